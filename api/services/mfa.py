"""Two-factor authentication: enrolment, codes, recovery codes, the login's challenges, resets.

The login flow itself (what a challenge leads to) is in `api/services/auth.py`; this module
owns the rules of the second factor. Every code is used up by a conditional UPDATE, so among
concurrent requests presenting one code exactly one succeeds.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, func, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from api.core.client_info import ClientInfo
from api.core.db import writes
from api.core.rate_limit import RateLimiter
from api.core.second_factor import (
    RECOVERY_CODE_COUNT,
    looks_like_totp_code,
    matching_step,
    new_recovery_code,
    new_totp_secret,
    normalized_recovery_code,
    provisioning_uri,
    qr_svg,
)
from api.core.secret_box import SecretBox, UndecryptableSecret
from api.core.security import PasswordHasher, new_random_token, sha256_hex
from api.models import MfaChallenge, RecoveryCode, TotpCredential, User, utcnow
from api.schemas.event import EventType
from api.services.audit import record_user_audit
from api.services.errors import Conflict, TooManyRequests, WrongCode, WrongPassword
from api.services.events import record_event
from api.services.sessions import mark_second_factor, revoke_user_sessions
from api.services.users import get_user

log = logging.getLogger("pixelgate.mfa")

MFA_TOKEN_LIFETIME = timedelta(minutes=5)
CODE_ATTEMPTS_SCOPE = "mfa_code"
MAX_WRONG_CODES_PER_CHALLENGE = 5
# Dead challenges are kept a while, so that a late use still gets its own answer (429 after
# too many wrong codes) rather than "unknown"; older ones are deleted at the next login.
CHALLENGE_RETENTION = timedelta(days=1)

ALREADY_ENABLED = "Two-factor authentication is already enabled"
NOT_ENABLED = "Two-factor authentication is not enabled"
NOTHING_PENDING = "There is no two-factor setup to confirm: start the setup first"
SETUP_CHANGED = "Two-factor authentication was set up or enabled meanwhile: start again"
INVALID_CODE = "Invalid two-factor code"
# `reason` of user.mfa_disabled: the owner turned it off, or an admin removed it.
DISABLED_BY_USER = "disabled_by_user"
ADMIN_RESET = "admin_reset"


@dataclass(frozen=True, slots=True)
class MfaStatus:
    enabled: bool
    enabled_at: datetime | None
    recovery_codes_left: int
    pending: bool


@dataclass(frozen=True, slots=True)
class TotpSetup:
    secret: str
    otpauth_uri: str
    qr_svg: str


@dataclass(frozen=True, slots=True)
class IssuedChallenge:
    mfa_token: str
    expires_in: int


def status(db: Session, user: User) -> MfaStatus:
    credential = user.totp
    enabled = user.mfa_enabled
    left = _recovery_codes_left(db, user.id) if enabled else 0
    return MfaStatus(
        enabled=enabled,
        enabled_at=credential.enabled_at if credential else None,
        recovery_codes_left=left,
        pending=credential is not None and not enabled,
    )


def _recovery_codes_left(db: Session, user_id: int) -> int:
    return (
        db.scalar(
            select(func.count())
            .select_from(RecoveryCode)
            .where(RecoveryCode.user_id == user_id, RecoveryCode.used_at.is_(None))
        )
        or 0
    )


# -- enrolment -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CodeAttemptLimit:
    """Codes checked by the enable, disable and recovery-codes routes, per account, at most
    `limit` (LOGIN_RATE_LIMIT): wrong codes there are no login failures and lock nothing, so
    without it a stolen session could guess a code and make itself new recovery codes."""

    limiter: RateLimiter
    limit: str

    def count(self, user: User) -> None:
        retry_after = self.limiter.hit(CODE_ATTEMPTS_SCOPE, self.limit, f"user:{user.id}")
        if retry_after is not None:
            raise TooManyRequests(
                f"Too many two-factor codes tried; try again in {retry_after} seconds",
                retry_after,
            )


def start_setup(db: Session, box: SecretBox, user: User) -> TotpSetup:
    """A new pending secret (replacing a pending one); it counts once a code confirms it."""
    if user.mfa_enabled:
        raise Conflict(ALREADY_ENABLED)
    secret = new_totp_secret()
    ciphertext = box.encrypt(secret)
    try:
        with writes(db):
            if user.totp is None:
                db.add(TotpCredential(user_id=user.id, secret_ciphertext=ciphertext))
                db.flush()
            else:
                replaced = db.execute(
                    update(TotpCredential)
                    .where(TotpCredential.user_id == user.id, TotpCredential.enabled_at.is_(None))
                    .values(secret_ciphertext=ciphertext, created_at=utcnow())
                    .execution_options(synchronize_session=False, cache_user_ids=(user.id,))
                ).rowcount
                if replaced != 1:
                    raise Conflict(SETUP_CHANGED)
    except IntegrityError:  # a concurrent setup inserted the row first
        raise Conflict(SETUP_CHANGED) from None
    uri = provisioning_uri(secret, user.username)
    return TotpSetup(secret=secret, otpauth_uri=uri, qr_svg=qr_svg(uri))


def enable(
    db: Session,
    limits: CodeAttemptLimit,
    box: SecretBox,
    user: User,
    code: str,
    *,
    session_id: int | None,
    client: ClientInfo,
) -> list[str]:
    """Confirms the pending secret with a code and returns the recovery codes (shown once).

    The code's step counts as used. Every other session is revoked: whoever else was logged
    in with the password alone is out. This session proved the code, so its next tokens
    carry `otp`.
    """
    credential = user.totp
    if user.mfa_enabled:
        raise Conflict(ALREADY_ENABLED)
    if credential is None:
        raise Conflict(NOTHING_PENDING)
    limits.count(user)
    step = _matching_step(box, credential, code)
    if step is None:
        raise WrongCode(INVALID_CODE)
    with writes(db):
        enabled = db.execute(
            update(TotpCredential)
            .where(
                TotpCredential.user_id == user.id,
                TotpCredential.enabled_at.is_(None),
                TotpCredential.secret_ciphertext == credential.secret_ciphertext,
            )
            .values(enabled_at=utcnow(), last_used_step=step)
            .execution_options(synchronize_session=False, cache_user_ids=(user.id,))
        ).rowcount
        if enabled != 1:
            raise Conflict(SETUP_CHANGED)
        codes = _replace_recovery_codes(db, user.id)
        revoked = revoke_user_sessions(
            db, user.id, reason="mfa_enabled", keep_session_id=session_id
        )
        if session_id is not None:
            mark_second_factor(db, user.id, session_id)
        record_user_audit(db, user, user, "mfa_enabled", client, {"sessions_revoked": revoked})
        record_event(db, EventType.USER_MFA_ENABLED, {"user_id": user.id})
    return codes


def disable(
    db: Session,
    limits: CodeAttemptLimit,
    hasher: PasswordHasher,
    box: SecretBox,
    user: User,
    *,
    password: str,
    code: str,
    client: ClientInfo,
) -> None:
    """Turns 2FA off with the password and a code (TOTP or recovery)."""
    if not user.mfa_enabled:
        raise Conflict(NOT_ENABLED)
    limits.count(user)
    if not hasher.verify(password, user.password_hash):
        raise WrongPassword("Password is incorrect")
    with writes(db):
        if not consume_code(db, box, user, code):
            raise WrongCode(INVALID_CODE)
        _remove_second_factor(db, user.id)
        record_user_audit(db, user, user, "mfa_disabled", client, {})
        record_event(
            db, EventType.USER_MFA_DISABLED, {"user_id": user.id, "reason": DISABLED_BY_USER}
        )


def regenerate_recovery_codes(
    db: Session,
    limits: CodeAttemptLimit,
    box: SecretBox,
    user: User,
    code: str,
    *,
    client: ClientInfo,
) -> list[str]:
    """Ten new recovery codes for a code (TOTP or recovery); the old ones are void."""
    if not user.mfa_enabled:
        raise Conflict(NOT_ENABLED)
    limits.count(user)
    with writes(db):
        if not consume_code(db, box, user, code):
            raise WrongCode(INVALID_CODE)
        codes = _replace_recovery_codes(db, user.id)
        record_user_audit(db, user, user, "mfa_recovery_codes_regenerated", client, {})
        record_event(db, EventType.USER_MFA_RECOVERY_CODES_REGENERATED, {"user_id": user.id})
    return codes


def reset(db: Session, actor: User | None, user_id: int, *, client: ClientInfo | None) -> None:
    """An admin removes an account's 2FA (e.g. its owner lost the device and the codes);
    `actor` None: the operator's `reset-mfa` command, for an admin no other admin can help."""
    user = get_user(db, user_id)
    was_enabled = user.mfa_enabled
    with writes(db):
        _remove_second_factor(db, user.id)
        record_user_audit(db, actor, user, "mfa_reset", client, {"was_enabled": was_enabled})
        if was_enabled:
            record_event(
                db,
                EventType.USER_MFA_DISABLED,
                {
                    "user_id": user.id,
                    "reason": ADMIN_RESET,
                    "actor_id": actor.id if actor else None,
                },
            )


def _remove_second_factor(db: Session, user_id: int) -> None:
    """The secret, the recovery codes and any login waiting for its second step."""
    for table in (TotpCredential, RecoveryCode, MfaChallenge):
        db.execute(
            delete(table)
            .where(table.user_id == user_id)
            .execution_options(synchronize_session=False, cache_user_ids=(user_id,))
        )


def _replace_recovery_codes(db: Session, user_id: int) -> list[str]:
    db.execute(
        delete(RecoveryCode)
        .where(RecoveryCode.user_id == user_id)
        .execution_options(synchronize_session=False)
    )
    codes = [new_recovery_code() for _ in range(RECOVERY_CODE_COUNT)]
    db.add_all(
        RecoveryCode(user_id=user_id, code_hash=sha256_hex(normalized_recovery_code(code)))
        for code in codes
    )
    return codes


# -- codes -----------------------------------------------------------------------------------


def _matching_step(box: SecretBox, credential: TotpCredential, code: str) -> int | None:
    try:
        secret = box.decrypt(credential.secret_ciphertext)
    except UndecryptableSecret:
        # Fail closed: no code is accepted; recovery codes and an admin reset still work.
        log.error(
            "TOTP secret of user %s cannot be decrypted: was MFA_ENCRYPTION_KEY (or, while it "
            "is unset, JWT_SECRET_KEY) changed?",
            credential.user_id,
        )
        return None
    return matching_step(secret, code)


def consume_code(db: Session, box: SecretBox, user: User, code: str) -> bool:
    """Accepts a current TOTP code of a later step than the last one used, or an unused
    recovery code, and uses it up. Joins the caller's unit of work."""
    if looks_like_totp_code(code):
        return _consume_totp(db, box, user, code)
    return _consume_recovery_code(db, user.id, code)


def _consume_totp(db: Session, box: SecretBox, user: User, code: str) -> bool:
    credential = user.totp
    if credential is None or credential.enabled_at is None:
        return False
    step = _matching_step(box, credential, code)
    if step is None:
        return False
    return (
        db.execute(
            update(TotpCredential)
            .where(
                TotpCredential.user_id == user.id,
                TotpCredential.enabled_at.is_not(None),
                or_(
                    TotpCredential.last_used_step.is_(None),
                    TotpCredential.last_used_step < step,
                ),
            )
            .values(last_used_step=step)
            .execution_options(synchronize_session=False, cache_user_ids=(user.id,))
        ).rowcount
        == 1
    )


def _consume_recovery_code(db: Session, user_id: int, code: str) -> bool:
    normalized = normalized_recovery_code(code)
    if not normalized:
        return False
    return (
        db.execute(
            update(RecoveryCode)
            .where(
                RecoveryCode.user_id == user_id,
                RecoveryCode.code_hash == sha256_hex(normalized),
                RecoveryCode.used_at.is_(None),
            )
            .values(used_at=utcnow())
            .execution_options(synchronize_session=False)
        ).rowcount
        == 1
    )


# -- the login's second step -----------------------------------------------------------------


def issue_challenge(db: Session, user: User, username_attempted: str) -> IssuedChallenge:
    """After the right password: the `mfa_token` that the code must come with. Joins the
    caller's unit of work."""
    now = utcnow()
    db.execute(
        delete(MfaChallenge)
        .where(MfaChallenge.user_id == user.id, MfaChallenge.expires_at < now - CHALLENGE_RETENTION)
        .execution_options(synchronize_session=False)
    )
    raw_token = new_random_token()
    db.add(
        MfaChallenge(
            user_id=user.id,
            token_hash=sha256_hex(raw_token),
            username_attempted=username_attempted,
            expires_at=now + MFA_TOKEN_LIFETIME,
        )
    )
    return IssuedChallenge(mfa_token=raw_token, expires_in=int(MFA_TOKEN_LIFETIME.total_seconds()))


def find_challenge(db: Session, raw_token: str) -> MfaChallenge | None:
    return db.scalar(select(MfaChallenge).where(MfaChallenge.token_hash == sha256_hex(raw_token)))


def challenge_exhausted(challenge: MfaChallenge) -> bool:
    return challenge.failed_attempts >= MAX_WRONG_CODES_PER_CHALLENGE


def challenge_alive(challenge: MfaChallenge) -> bool:
    return challenge.used_at is None and challenge.expires_at > utcnow()


def claim_challenge(db: Session, challenge: MfaChallenge) -> bool:
    """Uses the challenge up, if it is still alive and not exhausted (conditional, so one
    concurrent verify wins). Joins the caller's unit of work."""
    return (
        db.execute(
            update(MfaChallenge)
            .where(
                MfaChallenge.id == challenge.id,
                MfaChallenge.used_at.is_(None),
                MfaChallenge.expires_at > utcnow(),
                MfaChallenge.failed_attempts < MAX_WRONG_CODES_PER_CHALLENGE,
            )
            .values(used_at=utcnow())
            .execution_options(synchronize_session=False)
        ).rowcount
        == 1
    )


def release_after_wrong_code(db: Session, challenge: MfaChallenge) -> None:
    """Gives a claimed challenge back with one more wrong code counted. Joins the caller's
    unit of work (the one that claimed it, so no other request saw it claimed)."""
    db.execute(
        update(MfaChallenge)
        .where(MfaChallenge.id == challenge.id)
        .values(used_at=None, failed_attempts=MfaChallenge.failed_attempts + 1)
        .execution_options(synchronize_session=False)
    )
