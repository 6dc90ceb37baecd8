"""Writes the audit trail of security-relevant actions (read by /admin/audit-log)."""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from api.core.client_info import ClientInfo
from api.models import AuditEntry, User


def record_audit(
    db: Session,
    *,
    actor_id: int | None,
    action: str,
    target_type: str,
    target_id: int | None,
    client: ClientInfo | None = None,
    details: dict[str, Any] | None = None,
) -> AuditEntry:
    """Adds an entry to the caller's transaction; it is committed with the action it records."""
    entry = AuditEntry(
        actor_id=actor_id,
        action=action,
        target_type=target_type,
        target_id=target_id,
        ip_address=client.ip_address if client else None,
        details=details,
    )
    db.add(entry)
    return entry


def record_user_audit(
    db: Session,
    actor: User | None,
    user: User,
    action: str,
    client: ClientInfo | None,
    details: dict[str, Any],
) -> AuditEntry:
    """An action on an account, by itself, by an admin, or (no actor) by an operator's
    command; the details name the account."""
    return record_audit(
        db,
        actor_id=actor.id if actor else None,
        action=action,
        target_type="user",
        target_id=user.id,
        client=client,
        details={"username": user.username, **details},
    )
