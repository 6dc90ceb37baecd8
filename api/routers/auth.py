"""Auth routes: HTTP in and out only; the rules live in api/services/auth.py."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Body, Cookie, Depends, Query, Response, status
from fastapi.security import OAuth2PasswordRequestForm

from api.core.config import Settings
from api.dependencies import (
    AccessClaimsDep,
    Client,
    CurrentUser,
    DbSession,
    RateLimiterDep,
    SecretBoxDep,
    SettingsDep,
)
from api.schemas.auth import (
    ChangePasswordRequest,
    LoginEventOut,
    LoginRequest,
    LogoutRequest,
    RefreshRequest,
    SessionOut,
    SignupRequest,
    TokenPair,
    UpdateMeRequest,
    UserOut,
)
from api.schemas.common import (
    IdPath,
    Page,
    Pagination,
    error_responses,
    to_page,
)
from api.schemas.mfa import MfaRequiredOut
from api.services import auth as auth_service
from api.services import sessions as session_service
from api.services import users as user_service
from api.services.errors import NotAuthenticated
from api.services.login_history import login_history_page
from api.services.mfa import IssuedChallenge

router = APIRouter(prefix="/auth", tags=["auth"])

COOKIE_PATH = "/auth"
RefreshCookie = Annotated[str | None, Cookie(alias="refresh_token", include_in_schema=False)]


def token_response(
    response: Response, issued: session_service.IssuedTokens, settings: Settings
) -> TokenPair:
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


def _clear_cookie(response: Response, settings: Settings) -> None:
    response.delete_cookie(
        settings.refresh_cookie_name,
        path=COOKIE_PATH,
        httponly=True,
        secure=settings.cookie_secure,
        samesite="lax",
    )


@router.post(
    "/signup",
    status_code=status.HTTP_201_CREATED,
    response_model=UserOut,
    responses=error_responses(409, 422, 429),
)
def signup(
    body: SignupRequest,
    db: DbSession,
    settings: SettingsDep,
    limiter: RateLimiterDep,
    client: Client,
) -> UserOut:
    """Creates a member account. The password policy is enforced with a 422 naming the rule."""
    auth_service.enforce_rate_limit(
        limiter, auth_service.SIGNUP_SCOPE, settings.signup_rate_limit, client, "sign-ups"
    )
    user = user_service.signup(db, settings, **body.model_dump())
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
    limiter: RateLimiterDep,
    client: Client,
) -> TokenPair | MfaRequiredOut:
    """Logs in with username or email; also sets the refresh token as an HttpOnly cookie.

    For an account with two-factor authentication the right password answers
    `{"mfa_required": true, "mfa_token": …, "expires_in": 300}` instead (no tokens, no
    cookie): send the token with the code to `/auth/mfa/verify`.
    """
    issued = auth_service.login(
        db,
        settings,
        limiter,
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
    limiter: RateLimiterDep,
    box: SecretBoxDep,
    client: Client,
) -> TokenPair:
    """OAuth2 password flow, for Swagger's Authorize button. Same rules as /auth/login.

    **Two-factor authentication:** for an account with 2FA, put the current code of the
    authenticator app (or a recovery code) in the `client_secret` field; without a valid one
    the answer is a 401.
    """
    issued = auth_service.login_with_code(
        db,
        settings,
        limiter,
        box,
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
    limiter: RateLimiterDep,
    client: Client,
    cookie_token: RefreshCookie = None,
    body: Annotated[RefreshRequest | None, Body()] = None,
) -> TokenPair:
    """Rotates the refresh token (body or cookie). A reused token revokes its whole session."""
    raw_token = body.refresh_token if body else cookie_token
    if not raw_token:
        raise NotAuthenticated("No refresh token given")
    issued = auth_service.refresh(db, settings, limiter, raw_token=raw_token, client=client)
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
    _clear_cookie(response, settings)
    return response


@router.post("/logout-all", status_code=status.HTTP_204_NO_CONTENT, responses=error_responses(401))
def logout_all(user: CurrentUser, db: DbSession, settings: SettingsDep) -> Response:
    """Revokes every session of the caller, this one included."""
    session_service.revoke_user_sessions(db, user.id, reason="logout_all")
    db.commit()
    response = Response(status_code=status.HTTP_204_NO_CONTENT)
    _clear_cookie(response, settings)
    return response


@router.get("/me", response_model=UserOut, responses=error_responses(401))
def read_me(user: CurrentUser) -> UserOut:
    return UserOut.model_validate(user)


@router.patch("/me", response_model=UserOut, responses=error_responses(401, 422))
def update_me(body: UpdateMeRequest, user: CurrentUser, db: DbSession) -> UserOut:
    user.name = body.name
    db.commit()
    return UserOut.model_validate(user)


@router.post(
    "/change-password",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=error_responses(400, 401, 422),
)
def change_password(
    body: ChangePasswordRequest,
    user: CurrentUser,
    claims: AccessClaimsDep,
    db: DbSession,
    settings: SettingsDep,
) -> Response:
    """Changes the password and signs out every other session."""
    auth_service.change_password(
        db,
        settings,
        user,
        current_password=body.current_password,
        new_password=body.new_password,
        current_session_id=claims.session_id,
    )
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get("/sessions", response_model=list[SessionOut], responses=error_responses(401))
def list_sessions(user: CurrentUser, claims: AccessClaimsDep, db: DbSession) -> list[SessionOut]:
    """The caller's active sessions; `current` marks the one this token belongs to."""
    return [
        SessionOut(
            id=s.id,
            created_at=s.created_at,
            last_used_at=s.last_used_at,
            expires_at=s.expires_at,
            ip_address=s.ip_address,
            user_agent=s.user_agent,
            current=s.id == claims.session_id,
        )
        for s in session_service.active_sessions(db, user.id)
    ]


@router.delete(
    "/sessions/{session_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=error_responses(401, 404, 422),
)
def revoke_session(session_id: IdPath, user: CurrentUser, db: DbSession) -> Response:
    session_service.revoke_own_session(db, user.id, session_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get("/login-history", response_model=Page[LoginEventOut], responses=error_responses(401))
def login_history(
    user: CurrentUser,
    db: DbSession,
    page: Pagination,
    success: Annotated[bool | None, Query(description="Only successes or failures")] = None,
) -> Page[LoginEventOut]:
    items, total = login_history_page(db, page, user_id=user.id, success=success)
    return to_page(LoginEventOut, items, total, page)
