"""Everything routers inject: settings, database session, caller identity, collaborators.

Dependencies that do not block are `async def`: FastAPI runs a plain `def` dependency in the
thread pool, a hand-off per dependency per request. Only those that wait on the database are
plain functions.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import APIKeyHeader, OAuth2PasswordBearer
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from api.core.client_info import ClientInfo, client_info
from api.core.config import Settings
from api.core.db import holds_connection
from api.core.log_context import note_user
from api.core.metrics_exposition import MetricsSource, token_matches
from api.core.rate_limit import RateLimiter
from api.core.secret_box import SecretBox
from api.core.security import AccessClaims, AccessTokenCodec, PasswordHasher
from api.models import Role, User
from api.schemas.common import IdPath
from api.services.api_keys import authenticate_api_key
from api.services.auth import AuthService
from api.services.authentication import NOT_AUTHENTICATED, Authenticator, LookupPath
from api.services.errors import Forbidden, NotAuthenticated, NotFound
from api.services.job_runner import JobRunner
from api.services.mfa import CodeAttemptLimit
from api.services.user_cache import UserCache
from api.storage import Storage

bearer_scheme = OAuth2PasswordBearer(
    tokenUrl="/auth/token",
    auto_error=False,
    scheme_name="Bearer",
    description="Access token from /auth/login or /auth/token (Swagger's Authorize).",
)
api_key_scheme = APIKeyHeader(
    name="X-API-Key",
    auto_error=False,
    scheme_name="APIKey",
    description="A key from POST /api-keys; accepted on image and job routes only.",
)


async def get_settings(request: Request) -> Settings:
    return request.app.state.settings


SettingsDep = Annotated[Settings, Depends(get_settings)]


async def get_db(request: Request) -> AsyncIterator[Session]:
    """Opening a session does no I/O (it connects on first use). Closing one whose transaction
    still holds a connection rolls it back, which may wait on the database: that alone goes to
    a thread."""
    session = request.app.state.database.session_factory()
    try:
        yield session
    finally:
        if holds_connection(session):
            await run_in_threadpool(session.close)
        else:
            session.close()


DbSession = Annotated[Session, Depends(get_db)]


async def get_rate_limiter(request: Request) -> RateLimiter:
    return request.app.state.rate_limiter


RateLimiterDep = Annotated[RateLimiter, Depends(get_rate_limiter)]


async def get_token_codec(request: Request) -> AccessTokenCodec:
    return request.app.state.token_codec


TokenCodec = Annotated[AccessTokenCodec, Depends(get_token_codec)]


async def get_password_hasher(request: Request) -> PasswordHasher:
    return request.app.state.password_hasher


Hasher = Annotated[PasswordHasher, Depends(get_password_hasher)]


async def get_storage(request: Request) -> Storage:
    return request.app.state.storage


StorageDep = Annotated[Storage, Depends(get_storage)]


async def get_job_runner(request: Request) -> JobRunner:
    return request.app.state.job_runner


JobRunnerDep = Annotated[JobRunner, Depends(get_job_runner)]


async def get_metrics_source(request: Request) -> MetricsSource:
    return request.app.state.metrics


MetricsSourceDep = Annotated[MetricsSource, Depends(get_metrics_source)]


async def metrics_scrape(
    request: Request, settings: SettingsDep, source: MetricsSourceDep
) -> MetricsSource:
    """The metrics, for a caller presenting `Authorization: Bearer <METRICS_TOKEN>`; 404 while
    no token is configured (the route does not exist), 401 for any other caller."""
    if settings.metrics_token is None:
        raise NotFound("Not Found")
    if not token_matches(request.headers.get("authorization"), settings.metrics_token):
        raise NotAuthenticated("A valid metrics token is required")
    return source


MetricsScrape = Annotated[MetricsSource, Depends(metrics_scrape)]


async def get_user_cache(request: Request) -> UserCache | None:
    return request.app.state.user_cache


UserCacheDep = Annotated[UserCache | None, Depends(get_user_cache)]


async def get_secret_box(request: Request) -> SecretBox:
    return request.app.state.secret_box


SecretBoxDep = Annotated[SecretBox, Depends(get_secret_box)]


async def get_code_attempts(limiter: RateLimiterDep, settings: SettingsDep) -> CodeAttemptLimit:
    return CodeAttemptLimit(limiter, settings.login_rate_limit)


CodeAttempts = Annotated[CodeAttemptLimit, Depends(get_code_attempts)]


async def get_client_info(request: Request, settings: SettingsDep) -> ClientInfo:
    return client_info(request, settings)


Client = Annotated[ClientInfo, Depends(get_client_info)]

BearerToken = Annotated[str | None, Depends(bearer_scheme)]
ApiKeyHeaderValue = Annotated[str | None, Depends(api_key_scheme)]


async def get_auth_service(request: Request) -> AuthService:
    return request.app.state.auth_service


Auth = Annotated[AuthService, Depends(get_auth_service)]


async def get_authenticator(request: Request) -> Authenticator:
    return request.app.state.authenticator


AuthenticatorDep = Annotated[Authenticator, Depends(get_authenticator)]


async def get_access_claims(auth: AuthenticatorDep, token: BearerToken) -> AccessClaims:
    """An HS256 check is a few microseconds of CPU (and verified tokens are remembered):
    cheaper here than a thread hand-off."""
    return auth.claims(token)


AccessClaimsDep = Annotated[AccessClaims, Depends(get_access_claims)]


async def user_for_claims(auth: Authenticator, db: Session, claims: AccessClaims) -> User:
    """A lookup that waits on nothing runs here, as does one awaited on asyncpg (PostgreSQL);
    one that waits in a blocking client (the Redis cache, PostgreSQL through a URL with
    driver options) goes to a thread, which then has to win the GIL back from the loop."""
    if auth.lookup_path is LookupPath.AWAITED:
        return await auth.user_awaiting(db, claims)
    if auth.lookup_path is LookupPath.THREAD:
        return await run_in_threadpool(auth.user, db, claims)
    return auth.user(db, claims)


async def get_current_user(auth: AuthenticatorDep, db: DbSession, token: BearerToken) -> User:
    return await user_for_claims(auth, db, auth.claims(token))


CurrentUser = Annotated[User, Depends(get_current_user)]


async def get_user_from_token_or_api_key(
    auth: AuthenticatorDep, db: DbSession, token: BearerToken, api_key: ApiKeyHeaderValue
) -> User:
    """Image and job routes: a Bearer token, else an X-API-Key acting as its owner.

    A Bearer token, when sent, decides alone: a bad token is a 401 even with a good key.
    """
    if token:
        return await user_for_claims(auth, db, auth.claims(token))
    if api_key:
        user = await run_in_threadpool(authenticate_api_key, db, api_key)
        note_user(user.id)
        return user
    raise NotAuthenticated(NOT_AUTHENTICATED)


CurrentUserOrKey = Annotated[User, Depends(get_user_from_token_or_api_key)]


async def admin_required(user: CurrentUser) -> User:
    if user.role != Role.ADMIN.value:
        raise Forbidden("Administrator role required")
    return user


AdminUser = Annotated[User, Depends(admin_required)]

ADMIN_MFA_REQUIRED = "Two-factor authentication required for administrators"


async def admin_mfa_enforced(
    user: CurrentUser, claims: AccessClaimsDep, settings: SettingsDep
) -> None:
    """REQUIRE_ADMIN_MFA: an admin's token must have a second factor behind it. A router-wide
    dependency of the /users and /admin routers, so no route there can forget it."""
    if settings.require_admin_mfa and user.is_admin and "otp" not in claims.amr:
        raise Forbidden(ADMIN_MFA_REQUIRED)


async def self_or_admin(user_id: IdPath, user: CurrentUser) -> User:
    """For `/{user_id}` routes: the account itself or an admin; others get 403 before any
    lookup, so a member cannot tell which ids exist."""
    if user.id != user_id and not user.is_admin:
        raise Forbidden("You may only access your own account")
    return user


SelfOrAdmin = Annotated[User, Depends(self_or_admin)]
