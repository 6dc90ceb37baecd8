"""Token routes (sign-up, login, refresh, logout): HTTP in and out only; the rules live in
api/services/auth.py and sessions.py."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Body, Depends, Response, status
from fastapi.security import OAuth2PasswordRequestForm

from api.dependencies import Auth, Client, DbSession, SettingsDep
from api.routers.refresh_cookie import RefreshCookie, clear_refresh_cookie, token_response
from api.schemas.auth import (
    LoginRequest,
    LogoutRequest,
    RefreshRequest,
    SignupRequest,
    TokenPair,
    UserOut,
)
from api.schemas.common import error_responses
from api.schemas.mfa import MfaRequiredOut
from api.services import sessions as session_service
from api.services.errors import NotAuthenticated
from api.services.mfa import IssuedChallenge

router = APIRouter(prefix="/auth", tags=["auth"])


@router.post(
    "/signup",
    status_code=status.HTTP_201_CREATED,
    response_model=UserOut,
    responses=error_responses(409, 422, 429),
)
def signup(body: SignupRequest, db: DbSession, auth: Auth, client: Client) -> UserOut:
    """Creates a member account. The password policy is enforced with a 422 naming the rule."""
    user = auth.signup(db, client=client, **body.model_dump())
    return UserOut.model_validate(user)


@router.post(
    "/login",
    response_model=TokenPair | MfaRequiredOut,
    responses=error_responses(401, 403, 422, 429),
)
def login(
    body: LoginRequest,
    response: Response,
    db: DbSession,
    settings: SettingsDep,
    auth: Auth,
    client: Client,
) -> TokenPair | MfaRequiredOut:
    """Logs in with username or email; also sets the refresh token as an HttpOnly cookie.

    For an account with two-factor authentication the right password answers
    `{"mfa_required": true, "mfa_token": …, "expires_in": 300}` instead (no tokens, no
    cookie): send the token with the code to `/auth/mfa/verify`.
    """
    issued = auth.login(
        db,
        identifier=body.username,
        password=body.password,
        remember_me=body.remember_me,
        client=client,
    )
    if isinstance(issued, IssuedChallenge):
        response.headers["Cache-Control"] = "no-store"
        return MfaRequiredOut(mfa_token=issued.mfa_token, expires_in=issued.expires_in)
    return token_response(response, issued, settings)


@router.post("/token", response_model=TokenPair, responses=error_responses(401, 403, 422, 429))
def token(
    form: Annotated[OAuth2PasswordRequestForm, Depends()],
    response: Response,
    db: DbSession,
    settings: SettingsDep,
    auth: Auth,
    client: Client,
) -> TokenPair:
    """OAuth2 password flow, for Swagger's Authorize button. Same rules as /auth/login.

    **Two-factor authentication:** for an account with 2FA, put the current code of the
    authenticator app (or a recovery code) in the `client_secret` field; without a valid one
    the answer is a 401.
    """
    issued = auth.login_with_code(
        db,
        identifier=form.username,
        password=form.password,
        code=form.client_secret,
        client=client,
    )
    return token_response(response, issued, settings)


@router.post("/refresh", response_model=TokenPair, responses=error_responses(401, 422, 429))
def refresh(
    response: Response,
    db: DbSession,
    settings: SettingsDep,
    auth: Auth,
    client: Client,
    cookie_token: RefreshCookie = None,
    body: Annotated[RefreshRequest | None, Body()] = None,
) -> TokenPair:
    """Rotates the refresh token (body or cookie). A reused token revokes its whole session."""
    raw_token = body.refresh_token if body else cookie_token
    if not raw_token:
        raise NotAuthenticated("No refresh token given")
    issued = auth.refresh(db, raw_token=raw_token, client=client)
    return token_response(response, issued, settings)


@router.post("/logout", status_code=status.HTTP_204_NO_CONTENT, responses=error_responses(422))
def logout(
    db: DbSession,
    settings: SettingsDep,
    cookie_token: RefreshCookie = None,
    body: Annotated[LogoutRequest | None, Body()] = None,
) -> Response:
    """Revokes the session of the given refresh token and clears the cookie; idempotent."""
    raw_token = (body.refresh_token if body else None) or cookie_token
    if raw_token:
        session_service.revoke_session_of_token(db, raw_token)
    response = Response(status_code=status.HTTP_204_NO_CONTENT)
    clear_refresh_cookie(response, settings)
    return response
