"""The transactional outbox: events written in the same transaction as the change they describe.

`id` is the commit order (see `api/services/events.py` for how PostgreSQL is made to agree),
`event_id` the UUID the outside world sees. `handled_events` records which handler has finished
which event, so that a redelivered event does not run a handler twice.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import JSON, CheckConstraint, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from api.models.base import Base, utcnow


class EventState(StrEnum):
    PENDING = "pending"  # not yet published (broker) or handled (in-process)
    PUBLISHED = "published"  # the broker confirmed it
    HANDLED = "handled"  # every handler finished it
    FAILED = "failed"  # a handler gave up after its retries


class OutboxEvent(Base):
    __tablename__ = "event_outbox"
    __table_args__ = (
        CheckConstraint(
            "state IN ('pending', 'published', 'handled', 'failed')", name="state_known"
        ),
        Index("ix_event_outbox_state_id", "state", "id"),
        Index("ix_event_outbox_type_id", "type", "id"),
        # Never reuse an id on SQLite, even after the newest rows are deleted: ids are the order.
        {"sqlite_autoincrement": True},
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    event_id: Mapped[uuid.UUID] = mapped_column(unique=True)
    type: Mapped[str] = mapped_column(String(64))
    occurred_at: Mapped[datetime] = mapped_column(default=utcnow)
    data: Mapped[dict[str, Any]] = mapped_column(JSON)
    state: Mapped[str] = mapped_column(String(16), default=EventState.PENDING.value)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(Text)
    # When the relay may try again after a failure (the backoff); a new event is due at once.
    next_attempt_at: Mapped[datetime] = mapped_column(default=utcnow)
    published_at: Mapped[datetime | None]
    handled_at: Mapped[datetime | None]


class HandledEvent(Base):
    """One handler finished one event: the idempotency record of at-least-once delivery."""

    __tablename__ = "handled_events"

    event_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("event_outbox.event_id", ondelete="CASCADE"), primary_key=True
    )
    handler: Mapped[str] = mapped_column(String(200), primary_key=True)
    handled_at: Mapped[datetime] = mapped_column(default=utcnow)
