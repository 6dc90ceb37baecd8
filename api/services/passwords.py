"""The one way an account's password changes (change or reset): everything it implies."""

from __future__ import annotations

from typing import Literal

from sqlalchemy.orm import Session

from api.core.db import writes
from api.models import TokenPurpose, User, utcnow
from api.schemas.event import EventType
from api.services.account_links import void_links
from api.services.events import record_event
from api.services.sessions import revoke_user_sessions

_REVOKED_BECAUSE = {"change": "password_changed", "reset": "password_reset"}


def set_password(
    db: Session,
    user: User,
    password_hash: str,
    *,
    how: Literal["change", "reset"],
    keep_session_id: int | None = None,
) -> None:
    """Stores the new hash, voids every outstanding reset link, revokes every session but
    `keep_session_id`, and records `user.password_changed` (whose handler mails the notice).
    Joins the caller's unit of work."""
    with writes(db):
        user.password_hash = password_hash
        user.password_changed_at = utcnow()
        void_links(db, user.id, TokenPurpose.PASSWORD_RESET)
        revoke_user_sessions(
            db, user.id, reason=_REVOKED_BECAUSE[how], keep_session_id=keep_session_id
        )
        record_event(db, EventType.USER_PASSWORD_CHANGED, {"user_id": user.id})
