"""State changes of outbox rows, shared by the relay and the consumer."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Sequence
from datetime import datetime, timedelta

from sqlalchemy import update
from sqlalchemy.orm import Session

from api.models import EventState, OutboxEvent, utcnow
from api.schemas.event import Event

log = logging.getLogger("pixelgate.events")

MAX_ERROR_CHARS = 1000


def event_of(row: OutboxEvent) -> Event:
    return Event(id=row.event_id, type=row.type, occurred_at=row.occurred_at, data=row.data)


def retry_delay(delays_s: Sequence[float], failures: int) -> float | None:
    """The wait before the next try after `failures` failed ones; None once they are used up."""
    return delays_s[failures - 1] if failures <= len(delays_s) else None


def mark_handled(db: Session, event_id: uuid.UUID) -> None:
    now = utcnow()
    db.execute(
        update(OutboxEvent)
        .where(OutboxEvent.event_id == event_id)
        .values(state=EventState.HANDLED.value, handled_at=now, next_attempt_at=now)
        .execution_options(synchronize_session=False)
    )


def record_failure(
    db: Session,
    event_ids: Sequence[uuid.UUID],
    error: str,
    retry_at: datetime | None,
    *,
    state: EventState = EventState.PENDING,
) -> None:
    """Counts a failed try of each event; `retry_at` None means given up (`failed`)."""
    values: dict[str, object] = {
        "attempts": OutboxEvent.attempts + 1,
        "last_error": error[:MAX_ERROR_CHARS],
    }
    if retry_at is None:
        values["state"] = EventState.FAILED.value
    else:
        values |= {"state": state.value, "next_attempt_at": retry_at}
    db.execute(
        update(OutboxEvent)
        .where(OutboxEvent.event_id.in_(event_ids))
        .values(values)
        .execution_options(synchronize_session=False)
    )


def retry_time(delay_s: float | None) -> datetime | None:
    return None if delay_s is None else utcnow() + timedelta(seconds=delay_s)


def log_given_up(event: Event, attempts: int, error: str) -> None:
    log.error(
        "event given up after %d attempts: %s %s: %s",
        attempts,
        event.type,
        event.id,
        error[:MAX_ERROR_CHARS],
    )
