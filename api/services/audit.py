"""Writes the audit trail of security-relevant actions (read by /admin/audit-log)."""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from api.core.client_info import ClientInfo
from api.models import AuditEntry


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
