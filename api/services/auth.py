"""Sign-up, login, refresh and password changes: the rules of the Auth section.

Every per-address rate limit of these routes is enforced here, in the service, because a
refused login must still be written to the login history with the name it tried.
"""

from __future__ import annotations

from sqlalchemy.orm import Session

from api.core.client_info import ClientInfo
from api.core.config import Settings
from api.core.db import writes
from api.core.metrics import LOCKOUTS
from api.core.rate_limit import RateLimiter
from api.core.security import AccessTokenCodec, PasswordHasher
from api.models import LoginFailure, User, utcnow
from api.services import sessions
from api.services.errors import (
    AccountInactive,
    EmailNotVerified,
    InvalidCredentials,
    RuleViolation,
    TooManyRequests,
    WrongPassword,
)
from api.services.login_history import lockout_seconds_left, record_login_attempt
from api.services.password_policy import check_new_password
from api.services.passwords import set_password
from api.services.users import create_user, find_user_by_login

LOGIN_SCOPE = "login"
SIGNUP_SCOPE = "signup"
REFRESH_SCOPE = "refresh"


def _client_key(client: ClientInfo) -> str:
    return client.ip_address or "unknown"


def enforce_rate_limit(
    limiter: RateLimiter, scope: str, limit: str, client: ClientInfo, what: str
) -> None:
    retry_after = limiter.hit(scope, limit, _client_key(client))
    if retry_after is not None:
        raise TooManyRequests(
            f"Too many {what} from this address; try again in {retry_after} seconds", retry_after
        )


def signup(
    db: Session,
    settings: Settings,
    limiter: RateLimiter,
    hasher: PasswordHasher,
    *,
    client: ClientInfo,
    username: str,
    email: str,
    name: str,
    password: str,
    password_confirm: str,
    agree_terms: bool,
) -> User:
    """Creates a member account, at most SIGNUP_RATE_LIMIT per address."""
    enforce_rate_limit(limiter, SIGNUP_SCOPE, settings.signup_rate_limit, client, "sign-ups")
    if not agree_terms:
        raise RuleViolation("agree_terms", "You must agree to the terms of service")
    if password != password_confirm:
        raise RuleViolation("password_confirm", "Passwords do not match")
    return create_user(
        db, settings, hasher, username=username, email=email, name=name, password=password
    )


def login(
    db: Session,
    settings: Settings,
    limiter: RateLimiter,
    hasher: PasswordHasher,
    codec: AccessTokenCodec,
    *,
    identifier: str,
    password: str,
    remember_me: bool,
    client: ClientInfo,
) -> sessions.IssuedTokens:
    """Checks, in order: rate limit, lockout, password, active, verified (with
    REQUIRE_VERIFIED_EMAIL). Every outcome is recorded."""
    # One spelling for lookup, lockout and history, so " bob" locks like "bob" whether or not
    # bob exists. No account name holds NUL, and PostgreSQL cannot store it: make it inert.
    identifier = identifier.strip().replace("\x00", "\ufffd")
    # A unit of its own: no transaction (nor pooled connection) is held through bcrypt.
    with writes(db):
        user = find_user_by_login(db, identifier)
        locked_for = lockout_seconds_left(
            db, username_attempted=identifier, user=user, settings=settings
        )

    def fail(failure: LoginFailure, error: Exception) -> Exception:
        with writes(db):
            record_login_attempt(
                db, username_attempted=identifier, user=user, failure=failure, client=client
            )
        return error

    retry_after = limiter.hit(LOGIN_SCOPE, settings.login_rate_limit, _client_key(client))
    if retry_after is not None:
        raise fail(
            LoginFailure.RATE_LIMITED,
            TooManyRequests(
                f"Too many login attempts from this address; try again in {retry_after} seconds",
                retry_after,
            ),
        )
    if locked_for is not None:
        raise fail(
            LoginFailure.LOCKED,
            TooManyRequests(
                f"Too many failed logins for this account; try again in {locked_for} seconds",
                locked_for,
            ),
        )
    if not hasher.verify(password, user.password_hash if user else None) or user is None:
        error = fail(LoginFailure.BAD_CREDENTIALS, InvalidCredentials())
        with writes(db):
            locked_now = lockout_seconds_left(
                db, username_attempted=identifier, user=user, settings=settings
            )
        if locked_now is not None:
            LOCKOUTS.inc()  # this failure started a lockout (none was on before it)
        raise error
    if not user.is_active:
        raise fail(LoginFailure.INACTIVE, AccountInactive())
    if settings.require_verified_email and not user.is_verified:
        raise fail(LoginFailure.UNVERIFIED, EmailNotVerified())

    with writes(db):
        user.last_login_at = utcnow()
        record_login_attempt(
            db, username_attempted=identifier, user=user, failure=None, client=client
        )
        return sessions.start_session(
            db, settings, codec, user, remember_me=remember_me, client=client
        )


def refresh(
    db: Session,
    settings: Settings,
    limiter: RateLimiter,
    codec: AccessTokenCodec,
    *,
    raw_token: str,
    client: ClientInfo,
) -> sessions.IssuedTokens:
    enforce_rate_limit(limiter, REFRESH_SCOPE, settings.refresh_rate_limit, client, "refreshes")
    return sessions.rotate_refresh_token(db, settings, codec, raw_token, client)


def change_password(
    db: Session,
    settings: Settings,
    hasher: PasswordHasher,
    user: User,
    *,
    current_password: str,
    new_password: str,
    current_session_id: int | None,
) -> None:
    """Sets a new password and signs out every other session."""
    if not hasher.verify(current_password, user.password_hash):
        raise WrongPassword("Current password is incorrect")
    check_new_password(new_password, user, settings)
    set_password(
        db, user, hasher.hash(new_password), how="change", keep_session_id=current_session_id
    )
