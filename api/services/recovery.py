"""Account recovery and email verification on the request path: the rules of the contract's
"Account recovery and email verification".

A request never makes a link or sends a mail: it records an event, and the event's handler
(`api/services/recovery_mail.py`) makes the link and mails it after the answer. So a reset
request does the same work whether or not the address belongs to an account (a lookup and
one outbox row), and its answer says nothing about the account, in its body or its timing.
"""

from __future__ import annotations

from sqlalchemy.orm import Session

from api.core.client_info import ClientInfo
from api.core.config import Settings
from api.core.db import writes
from api.core.rate_limit import RateLimiter
from api.core.security import PasswordHasher
from api.models import AccountToken, TokenPurpose, User
from api.schemas.event import EventType
from api.services.account_links import find_open_link, use_link, void_links
from api.services.audit import record_audit
from api.services.auth import enforce_rate_limit
from api.services.errors import Conflict, InvalidLink
from api.services.events import record_event
from api.services.password_policy import check_new_password
from api.services.passwords import set_password
from api.services.users import find_user_by_login, get_user

RESET_REQUEST_SCOPE = "password_reset_request"
VERIFICATION_REQUEST_SCOPE = "email_verification_request"
INVALID_RESET_LINK = "Invalid or expired reset link"
INVALID_VERIFICATION_LINK = "Invalid or expired verification link"
ALREADY_VERIFIED = "Email address is already verified"


def request_password_reset(
    db: Session, settings: Settings, limiter: RateLimiter, *, email: str, client: ClientInfo
) -> None:
    """Records the request for the handler to act on; the same work for every address.

    `user_id` is null for an address of no account; the handler also skips inactive and
    deleted accounts and enforces RESET_EMAILS_PER_HOUR, so nothing here depends on them.
    """
    enforce_rate_limit(
        limiter,
        RESET_REQUEST_SCOPE,
        settings.password_reset_rate_limit,
        client,
        "password reset requests",
    )
    user = find_user_by_login(db, email)
    with writes(db):
        record_event(
            db,
            EventType.USER_PASSWORD_RESET_REQUESTED,
            {"user_id": user.id if user else None, "requested_by": None},
        )


def send_password_reset(db: Session, admin: User, user_id: int, *, client: ClientInfo) -> None:
    """An admin has the account's owner mailed a reset link (it counts towards the account's
    hourly limit like any other); audited as `password_reset_sent`."""
    user = get_user(db, user_id)
    with writes(db):
        record_event(
            db,
            EventType.USER_PASSWORD_RESET_REQUESTED,
            {"user_id": user.id, "requested_by": admin.id},
        )
        record_audit(
            db,
            actor_id=admin.id,
            action="password_reset_sent",
            target_type="user",
            target_id=user.id,
            client=client,
            details={"username": user.username},
        )


def _account_of(db: Session, link: AccountToken | None) -> User | None:
    user = db.get(User, link.user_id) if link is not None else None
    if user is None or not user.is_active or user.deleted_at is not None:
        return None
    return user


def confirm_password_reset(
    db: Session, settings: Settings, hasher: PasswordHasher, *, token: str, new_password: str
) -> None:
    """Sets the new password from a reset link and revokes every session of the account.
    Using a link mailed to the account's address proves the address too: it is then verified
    (so an account that REQUIRE_VERIFIED_EMAIL keeps out can always get in by a reset).

    The link is checked first (400), then the policy (422, the link stays usable), then hashed
    off any transaction; the link is used up in the unit of work that changes the password,
    so a confirm that loses a race changes nothing.
    """
    user = _account_of(db, find_open_link(db, token, TokenPurpose.PASSWORD_RESET))
    if user is None:
        raise InvalidLink(INVALID_RESET_LINK)
    check_new_password(new_password, user, settings)
    password_hash = hasher.hash(new_password)
    with writes(db):
        link = use_link(db, token, TokenPurpose.PASSWORD_RESET)
        if link is None:
            raise InvalidLink(INVALID_RESET_LINK)
        set_password(db, user, password_hash, how="reset")
        if link.email.casefold() == user.email.casefold():
            _mark_verified(db, user)


def request_email_verification(
    db: Session, settings: Settings, limiter: RateLimiter, user: User, *, client: ClientInfo
) -> None:
    """Has a new verification link mailed to the caller's address (older ones are voided
    when it is made)."""
    enforce_rate_limit(
        limiter,
        VERIFICATION_REQUEST_SCOPE,
        settings.password_reset_rate_limit,
        client,
        "verification requests",
    )
    if user.is_verified:
        raise Conflict(ALREADY_VERIFIED)
    with writes(db):
        record_event(db, EventType.USER_EMAIL_VERIFICATION_REQUESTED, {"user_id": user.id})


def confirm_email_verification(db: Session, *, token: str) -> User:
    """Marks the account's address verified; the link must have been mailed to the address
    the account has now."""
    with writes(db):
        link = use_link(db, token, TokenPurpose.EMAIL_VERIFICATION)
        user = _account_of(db, link)
        if link is None or user is None or link.email.casefold() != user.email.casefold():
            raise InvalidLink(INVALID_VERIFICATION_LINK)
        _mark_verified(db, user)
    return user


def _mark_verified(db: Session, user: User) -> None:
    """Joins the caller's unit of work: the address is verified, other verification links
    are void."""
    void_links(db, user.id, TokenPurpose.EMAIL_VERIFICATION)
    if not user.is_verified:
        user.is_verified = True
        record_event(db, EventType.USER_EMAIL_VERIFIED, {"user_id": user.id})
