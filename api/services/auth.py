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
from api.core.secret_box import SecretBox
from api.core.security import AccessTokenCodec, PasswordHasher
from api.models import LoginFailure, User, utcnow
from api.services import mfa, sessions
from api.services.errors import (
    AccountInactive,
    EmailNotVerified,
    InvalidCredentials,
    NotAuthenticated,
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
MFA_VERIFY_SCOPE = "mfa_verify"

CODE_REQUIRED = "Two-factor code required: put the current code in the client_secret field."
DEAD_CHALLENGE = "This two-factor login is invalid, used or expired: log in again"
CHALLENGE_EXHAUSTED = "Too many wrong codes for this login: log in again"


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


def _address_rate_limited(retry_after: int) -> TooManyRequests:
    return TooManyRequests(
        f"Too many login attempts from this address; try again in {retry_after} seconds",
        retry_after,
    )


def _account_locked(locked_for: int) -> TooManyRequests:
    return TooManyRequests(
        f"Too many failed logins for this account; try again in {locked_for} seconds", locked_for
    )


def _count_if_now_locked(
    db: Session, settings: Settings, identifier: str, user: User | None
) -> None:
    """After a wrong password or code on an account that was not locked: whether that failure
    started a lockout (`pixelgate_lockouts_total`)."""
    with writes(db):
        locked_now = lockout_seconds_left(
            db, username_attempted=identifier, user=user, settings=settings
        )
    if locked_now is not None:
        LOCKOUTS.inc()


def _refused(
    db: Session,
    identifier: str,
    user: User | None,
    client: ClientInfo,
    failure: LoginFailure,
    error: Exception,
) -> Exception:
    """Writes a refused login (or second step) to the history; answers the error to raise."""
    with writes(db):
        record_login_attempt(
            db, username_attempted=identifier, user=user, failure=failure, client=client
        )
    return error


class AuthService:
    """Built once per app (`create_app`) with what every sign-up, login and refresh needs, so
    a route resolves one dependency for them rather than one each."""

    def __init__(
        self,
        settings: Settings,
        limiter: RateLimiter,
        hasher: PasswordHasher,
        codec: AccessTokenCodec,
        box: SecretBox,
    ) -> None:
        self._settings = settings
        self._limiter = limiter
        self._hasher = hasher
        self._codec = codec
        self._box = box

    def signup(
        self,
        db: Session,
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
        settings = self._settings
        enforce_rate_limit(
            self._limiter, SIGNUP_SCOPE, settings.signup_rate_limit, client, "sign-ups"
        )
        if not agree_terms:
            raise RuleViolation("agree_terms", "You must agree to the terms of service")
        if password != password_confirm:
            raise RuleViolation("password_confirm", "Passwords do not match")
        return create_user(
            db, settings, self._hasher, username=username, email=email, name=name, password=password
        )

    def login(
        self,
        db: Session,
        *,
        identifier: str,
        password: str,
        remember_me: bool,
        client: ClientInfo,
    ) -> sessions.IssuedTokens | mfa.IssuedChallenge:
        """Checks, in order: rate limit, lockout, password, active, verified (with
        REQUIRE_VERIFIED_EMAIL). Every outcome is recorded.

        For an account with 2FA the right password earns a challenge for the second step
        (`verify_second_factor`), and is not yet a login event: each verify attempt is.
        """
        settings = self._settings
        # One spelling for lookup, lockout and history, so " bob" locks like "bob" whether or
        # not bob exists. No account name holds NUL, and PostgreSQL cannot store it: make it
        # inert.
        identifier = identifier.strip().replace("\x00", "\ufffd")
        # A unit of its own: no transaction (nor pooled connection) is held through bcrypt.
        with writes(db):
            user = find_user_by_login(db, identifier)
            locked_for = lockout_seconds_left(
                db, username_attempted=identifier, user=user, settings=settings
            )

        def fail(failure: LoginFailure, error: Exception) -> Exception:
            return _refused(db, identifier, user, client, failure, error)

        retry_after = self._limiter.hit(LOGIN_SCOPE, settings.login_rate_limit, _client_key(client))
        if retry_after is not None:
            raise fail(LoginFailure.RATE_LIMITED, _address_rate_limited(retry_after))
        if locked_for is not None:
            raise fail(LoginFailure.LOCKED, _account_locked(locked_for))
        if not self._hasher.verify(password, user.password_hash if user else None) or user is None:
            error = fail(LoginFailure.BAD_CREDENTIALS, InvalidCredentials())
            _count_if_now_locked(db, settings, identifier, user)
            raise error
        if not user.is_active:
            raise fail(LoginFailure.INACTIVE, AccountInactive())
        if settings.require_verified_email and not user.is_verified:
            raise fail(LoginFailure.UNVERIFIED, EmailNotVerified())

        if user.mfa_enabled:
            with writes(db):
                return mfa.issue_challenge(db, user, identifier)

        with writes(db):
            user.last_login_at = utcnow()
            record_login_attempt(
                db, username_attempted=identifier, user=user, failure=None, client=client
            )
            return sessions.start_session(
                db, settings, self._codec, user, remember_me=remember_me, client=client
            )

    def login_with_code(
        self,
        db: Session,
        *,
        identifier: str,
        password: str,
        code: str | None,
        client: ClientInfo,
    ) -> sessions.IssuedTokens:
        """/auth/token, Swagger's password flow, which has no second step: for an account with
        2FA the code comes with the password (in the form's `client_secret`) and both steps of
        a login run in one request, with the rules of each."""
        issued = self.login(
            db, identifier=identifier, password=password, remember_me=False, client=client
        )
        if isinstance(issued, sessions.IssuedTokens):
            return issued
        try:
            return self.verify_second_factor(
                db, mfa_token=issued.mfa_token, code=code or "", remember_me=False, client=client
            )
        except NotAuthenticated:
            raise NotAuthenticated(CODE_REQUIRED) from None

    def verify_second_factor(
        self,
        db: Session,
        *,
        mfa_token: str,
        code: str,
        remember_me: bool,
        client: ClientInfo,
    ) -> sessions.IssuedTokens:
        """The login's second step: a TOTP or recovery code for the challenge of `mfa_token`.

        Each attempt is a login event. Wrong codes count towards the account's lockout; a
        challenge that has seen MAX_WRONG_CODES_PER_CHALLENGE of them refuses even the right one.
        """
        settings = self._settings
        with writes(db):  # reads only: the writes below start afresh
            challenge = mfa.find_challenge(db, mfa_token)
            user = challenge.user if challenge is not None else None
            identifier = challenge.username_attempted if challenge is not None else ""
            locked_for = (
                lockout_seconds_left(
                    db, username_attempted=identifier, user=user, settings=settings
                )
                if user is not None
                else None
            )

        def fail(failure: LoginFailure, error: Exception) -> Exception:
            return _refused(db, identifier, user, client, failure, error)

        def exhausted() -> Exception:
            return fail(LoginFailure.LOCKED, TooManyRequests(CHALLENGE_EXHAUSTED, locked_for or 1))

        retry_after = self._limiter.hit(
            MFA_VERIFY_SCOPE, settings.login_rate_limit, _client_key(client)
        )
        if retry_after is not None:
            raise fail(LoginFailure.RATE_LIMITED, _address_rate_limited(retry_after))
        if challenge is None or user is None:
            raise fail(LoginFailure.MFA_FAILED, NotAuthenticated(DEAD_CHALLENGE))
        if mfa.challenge_exhausted(challenge):
            raise exhausted()
        if not mfa.challenge_alive(challenge) or not user.mfa_enabled:
            raise fail(LoginFailure.MFA_FAILED, NotAuthenticated(DEAD_CHALLENGE))
        if locked_for is not None:
            raise fail(LoginFailure.LOCKED, _account_locked(locked_for))
        if not user.is_active:
            raise fail(LoginFailure.INACTIVE, AccountInactive())

        with writes(db):
            # The claim comes first: it locks the challenge's row (PostgreSQL) or the database
            # (SQLite) until the outcome is written, so concurrent verifies take turns.
            claimed = mfa.claim_challenge(db, challenge)
            accepted = claimed and mfa.consume_code(db, self._box, user, code)
            if accepted:
                user.last_login_at = utcnow()
                record_login_attempt(
                    db, username_attempted=identifier, user=user, failure=None, client=client
                )
                return sessions.start_session(
                    db,
                    settings,
                    self._codec,
                    user,
                    remember_me=remember_me,
                    client=client,
                    amr=sessions.PASSWORD_AND_OTP,
                )
            if claimed:  # a wrong code, or one another request used first
                mfa.release_after_wrong_code(db, challenge)
                record_login_attempt(
                    db,
                    username_attempted=identifier,
                    user=user,
                    failure=LoginFailure.MFA_FAILED,
                    client=client,
                )
        if claimed:
            _count_if_now_locked(db, settings, identifier, user)
            raise NotAuthenticated(mfa.INVALID_CODE)
        # Another request used or exhausted the challenge since it was read.
        with writes(db):
            db.refresh(challenge)
        if mfa.challenge_exhausted(challenge):
            raise exhausted()
        raise fail(LoginFailure.MFA_FAILED, NotAuthenticated(DEAD_CHALLENGE))

    def refresh(self, db: Session, *, raw_token: str, client: ClientInfo) -> sessions.IssuedTokens:
        settings = self._settings
        enforce_rate_limit(
            self._limiter, REFRESH_SCOPE, settings.refresh_rate_limit, client, "refreshes"
        )
        return sessions.rotate_refresh_token(db, settings, self._codec, raw_token, client)

    def change_password(
        self,
        db: Session,
        user: User,
        *,
        current_password: str,
        new_password: str,
        current_session_id: int | None,
    ) -> None:
        """Sets a new password and signs out every other session."""
        if not self._hasher.verify(current_password, user.password_hash):
            raise WrongPassword("Current password is incorrect")
        check_new_password(new_password, user, self._settings)
        set_password(
            db,
            user,
            self._hasher.hash(new_password),
            how="change",
            keep_session_id=current_session_id,
        )
