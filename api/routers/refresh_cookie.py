"""The refresh-token cookie: set by the token routes, cleared by logout and logout-all."""

from __future__ import annotations

from typing import Annotated

from fastapi import Cookie, Response

from api.core.config import Settings
from api.schemas.auth import TokenPair
from api.services.sessions import IssuedTokens

COOKIE_PATH = "/auth"
RefreshCookie = Annotated[str | None, Cookie(alias="refresh_token", include_in_schema=False)]


def token_response(response: Response, issued: IssuedTokens, settings: Settings) -> TokenPair:
    """The token pair as the answer's body, the refresh token also as an HttpOnly cookie."""
    response.set_cookie(
        settings.refresh_cookie_name,
        issued.refresh_token,
        max_age=issued.refresh_expires_in if issued.remember_me else None,
        path=COOKIE_PATH,
        httponly=True,
        secure=settings.cookie_secure,
        samesite="lax",
    )
    response.headers["Cache-Control"] = "no-store"
    return TokenPair(
        access_token=issued.access_token,
        refresh_token=issued.refresh_token,
        expires_in=issued.access_expires_in,
        refresh_expires_in=issued.refresh_expires_in,
    )


def clear_refresh_cookie(response: Response, settings: Settings) -> None:
    response.delete_cookie(
        settings.refresh_cookie_name,
        path=COOKIE_PATH,
        httponly=True,
        secure=settings.cookie_secure,
        samesite="lax",
    )
