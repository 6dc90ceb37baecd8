"""One-time links (password reset, email verification): made, voided and used up.

A link is made by the event handler that mails it, never on the request path: the raw token
exists only in that handler's memory and in the mail, and only its SHA-256 is stored. Each
link belongs to one event (`event_id`), so a handler retried after a failed delivery replaces
its own link's token instead of making a second link.

Rules kept here:
- a newer request voids the older open links of the same purpose; a link for a request older
  than an open one, or (reset) than the last password change, is not made at all;
- at most `RESET_EMAILS_PER_HOUR` reset links are made per account per rolling hour (admin
  sent ones too); beyond it nothing is made and nothing changes;
- a link is used up by one conditional UPDATE, so of N concurrent confirms exactly one wins.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import ColumnElement, Update, func, select, update
from sqlalchemy.orm import Session

from api.core.config import Settings
from api.core.db import writes
from api.core.security import new_random_token, sha256_hex
from api.models import AccountToken, TokenPurpose, User, utcnow

RESET_LIMIT_WINDOW = timedelta(hours=1)


def link_lifetime(settings: Settings, purpose: TokenPurpose) -> timedelta:
    if purpose is TokenPurpose.PASSWORD_RESET:
        return timedelta(minutes=settings.password_reset_expire_minutes)
    return timedelta(hours=settings.email_verify_expire_hours)


@dataclass(frozen=True, slots=True)
class IssuedLink:
    """What the mail needs; `raw_token` is never stored or logged."""

    user: User
    raw_token: str
    lifetime: timedelta


class _NotIssued(Exception):
    """Ends the unit of work without a link (rolled back: nothing changes)."""


def issue_link(
    db: Session,
    settings: Settings,
    *,
    event_id: uuid.UUID,
    requested_at: datetime,
    user_id: int,
    purpose: TokenPurpose,
    requested_by_id: int | None = None,
) -> IssuedLink | None:
    """Makes (or, for a retried event, remakes) the link of one request; None when there is
    nothing to mail: the account is gone or inactive, the address is already verified, the
    request was superseded, or the account's reset limit is reached."""
    user = db.get(User, user_id)
    if user is None or not user.is_active or user.deleted_at is not None:
        return None
    if purpose is TokenPurpose.EMAIL_VERIFICATION and user.is_verified:
        return None
    raw_token = new_random_token()
    lifetime = link_lifetime(settings, purpose)
    existing = db.scalar(select(AccountToken).where(AccountToken.event_id == event_id))
    try:
        with writes(db):
            if existing is None:
                _make_link(db, settings, user, purpose, event_id, requested_at, requested_by_id)
                db.add(
                    AccountToken(
                        user_id=user.id,
                        purpose=purpose.value,
                        event_id=event_id,
                        token_hash=sha256_hex(raw_token),
                        email=user.email,
                        requested_by_id=requested_by_id,
                        requested_at=requested_at,
                        expires_at=utcnow() + lifetime,
                    )
                )
            else:
                _renew_token(db, existing.id, raw_token, lifetime)
    except _NotIssued:
        return None
    return IssuedLink(user=user, raw_token=raw_token, lifetime=lifetime)


def _make_link(
    db: Session,
    settings: Settings,
    user: User,
    purpose: TokenPurpose,
    event_id: uuid.UUID,
    requested_at: datetime,
    requested_by_id: int | None,
) -> None:
    """Voids the older open links and checks the limit, or raises _NotIssued.

    The first statement writes (SQLite: the write lock, so concurrent handlers queue instead
    of failing); on PostgreSQL the account's row is locked first, so two handlers of one
    account (or a handler and a password change) go one after the other, and what is read
    below is what they committed.
    """
    if db.get_bind().dialect.name == "postgresql":
        db.execute(select(User.id).where(User.id == user.id).with_for_update())
    now = utcnow()
    db.execute(
        _open_links(user.id, purpose)
        .where(AccountToken.requested_at <= requested_at)
        .values(voided_at=now)
    )
    if purpose is TokenPurpose.PASSWORD_RESET:
        changed_at = db.scalar(select(User.password_changed_at).where(User.id == user.id))
        if changed_at is not None and changed_at >= requested_at:
            raise _NotIssued  # a password change since voids what was asked for before it
    if _count(db, *_of(user.id, purpose), *_OPEN, AccountToken.requested_at > requested_at):
        raise _NotIssued  # a later request's link is out already: this one is superseded
    if purpose is TokenPurpose.PASSWORD_RESET:
        made_lately = _count(
            db, *_of(user.id, purpose), AccountToken.created_at > now - RESET_LIMIT_WINDOW
        )
        if made_lately >= settings.reset_emails_per_hour:
            raise _NotIssued


def _renew_token(db: Session, link_id: int, raw_token: str, lifetime: timedelta) -> None:
    """A retry of the handler: the earlier token may never have arrived, so the link gets a
    new one (and a full lifetime), as long as it is still open."""
    renewed = db.execute(
        update(AccountToken)
        .where(AccountToken.id == link_id, *_OPEN)
        .values(token_hash=sha256_hex(raw_token), expires_at=utcnow() + lifetime)
        .execution_options(synchronize_session=False)
    ).rowcount
    if renewed != 1:
        raise _NotIssued


_OPEN = (AccountToken.used_at.is_(None), AccountToken.voided_at.is_(None))


def _of(user_id: int, purpose: TokenPurpose) -> tuple[ColumnElement[bool], ...]:
    return (AccountToken.user_id == user_id, AccountToken.purpose == purpose.value)


def _usable(raw_token: str, purpose: TokenPurpose) -> tuple[ColumnElement[bool], ...]:
    return (
        AccountToken.token_hash == sha256_hex(raw_token),
        AccountToken.purpose == purpose.value,
        *_OPEN,
        AccountToken.expires_at > utcnow(),
    )


def _count(db: Session, *conditions: ColumnElement[bool]) -> int:
    return db.scalar(select(func.count()).select_from(AccountToken).where(*conditions)) or 0


def _open_links(user_id: int, purpose: TokenPurpose) -> Update:
    return (
        update(AccountToken)
        .where(*_of(user_id, purpose), *_OPEN)
        .execution_options(synchronize_session=False)
    )


def void_links(db: Session, user_id: int, purpose: TokenPurpose) -> int:
    """Voids every open link of that purpose (a password change: every reset link). Joins
    the caller's unit of work."""
    return db.execute(_open_links(user_id, purpose).values(voided_at=utcnow())).rowcount


def use_link(db: Session, raw_token: str, purpose: TokenPurpose) -> AccountToken | None:
    """Uses the link up if it is open and unexpired: one conditional UPDATE, so among
    concurrent uses exactly one gets the row. Joins the caller's unit of work (a rollback
    gives the link back)."""
    used_id = db.execute(
        update(AccountToken)
        .where(*_usable(raw_token, purpose))
        .values(used_at=utcnow())
        .returning(AccountToken.id)
        .execution_options(synchronize_session=False)
    ).scalar()
    return None if used_id is None else db.get(AccountToken, used_id)


def find_open_link(db: Session, raw_token: str, purpose: TokenPurpose) -> AccountToken | None:
    """The link, if it could be used now (a read: checks before the slow work of a reset)."""
    return db.scalar(select(AccountToken).where(*_usable(raw_token, purpose)))
