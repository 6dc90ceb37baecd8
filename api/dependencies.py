"""Everything routers inject: settings, database session, caller identity, services' inputs."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import OAuth2PasswordBearer
from sqlalchemy.orm import Session

from api.core.client_info import ClientInfo, client_info
from api.core.config import Settings
from api.core.rate_limit import RateLimiter
from api.core.security import AccessClaims, InvalidAccessToken
from api.models import Role, User
from api.services.errors import Forbidden, NotAuthenticated
from api.services.sessions import access_codec, session_is_active

bearer_scheme = OAuth2PasswordBearer(
    tokenUrl="/auth/token",
    auto_error=False,
    scheme_name="Bearer",
    description="Access token from /auth/login or /auth/token (Swagger's Authorize).",
)


def get_settings(request: Request) -> Settings:
    return request.app.state.settings


SettingsDep = Annotated[Settings, Depends(get_settings)]


def get_db(request: Request) -> Iterator[Session]:
    with request.app.state.database.session() as session:
        yield session


DbSession = Annotated[Session, Depends(get_db)]


def get_rate_limiter(request: Request) -> RateLimiter:
    return request.app.state.rate_limiter


RateLimiterDep = Annotated[RateLimiter, Depends(get_rate_limiter)]


def get_client_info(request: Request, settings: SettingsDep) -> ClientInfo:
    return client_info(request, settings)


Client = Annotated[ClientInfo, Depends(get_client_info)]

NOT_AUTHENTICATED = "Not authenticated"
INVALID_TOKEN = "Invalid or expired access token"


def get_access_claims(
    settings: SettingsDep, token: Annotated[str | None, Depends(bearer_scheme)]
) -> AccessClaims:
    if not token:
        raise NotAuthenticated(NOT_AUTHENTICATED)
    try:
        return access_codec(settings).decode(token)
    except InvalidAccessToken as exc:
        raise NotAuthenticated(INVALID_TOKEN) from exc


AccessClaimsDep = Annotated[AccessClaims, Depends(get_access_claims)]


def user_for_claims(db: Session, claims: AccessClaims) -> User:
    """The token's user, if it still exists, is active, and its session was not revoked."""
    user = db.get(User, claims.user_id)
    if user is None or not user.is_active:
        raise NotAuthenticated(INVALID_TOKEN)
    if claims.session_id is not None and not session_is_active(db, claims.session_id, user.id):
        raise NotAuthenticated(INVALID_TOKEN)
    return user


def get_current_user(db: DbSession, claims: AccessClaimsDep) -> User:
    return user_for_claims(db, claims)


CurrentUser = Annotated[User, Depends(get_current_user)]


def get_user_from_token_or_api_key(db: DbSession, claims: AccessClaimsDep) -> User:
    """Image and job routes: a Bearer token (API keys are added by the API-keys feature)."""
    return user_for_claims(db, claims)


CurrentUserOrKey = Annotated[User, Depends(get_user_from_token_or_api_key)]


def admin_required(user: CurrentUser) -> User:
    if user.role != Role.ADMIN.value:
        raise Forbidden("Administrator role required")
    return user


AdminUser = Annotated[User, Depends(admin_required)]
