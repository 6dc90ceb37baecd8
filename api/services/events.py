"""Recording domain events in the transactional outbox.

`record_event(db, EventType.USER_CREATED, {"user_id": user.id})`, called inside the unit of
work that makes the change (`with writes(db): ...`), adds the event's outbox row to that same
transaction: a change that rolls back leaves no event, a committed one always has its event.
The relay (`api/events/relay.py`) publishes or handles the row once it is committed.

Commit order. The relay delivers events in `event_outbox.id` order, which must be the order in
which their transactions committed. SQLite has one writer at a time, so ids are allocated in
commit order anyway. PostgreSQL allocates sequence values at insert, not at commit: a
transaction that inserted id 7 may commit after one that inserted id 8, and a relay reading in
between would publish 8 and later 7. So before adding an outbox row, a transaction takes a
transaction-scoped advisory lock (`pg_advisory_xact_lock`), held until it commits or rolls back:
transactions that write events commit one after another from that point, and id order is commit
order. Only the tail of an event-writing transaction is serialised (call `record_event` next to
the change, after slow work such as hashing or file writes), and transactions without events
never wait.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Mapping
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from api.models import EventState, OutboxEvent, utcnow
from api.repositories.pagination import fetch_page
from api.schemas.common import PageParams
from api.schemas.event import REQUIRED_DATA_KEYS, EventType

# Any value fits a bigint; this one is "pixelgate outbox" in ASCII, unlikely to clash.
OUTBOX_LOCK_KEY = 0x706978656C6F7574
# A key with one of these words names a secret: `data` is published to other systems.
_SECRET_WORDS = frozenset({"password", "secret", "token", "hash", "otp", "totp", "credential"})
_KEY_WORDS = re.compile(r"[a-z0-9]+")
_CAMEL_BOUNDARY = re.compile(r"(?<=[a-z0-9])(?=[A-Z])")


def record_event(db: Session, event_type: str, data: Mapping[str, Any]) -> None:
    """Adds an event to the caller's transaction (its `with writes(db):` unit of work), so it
    commits or rolls back with the change. It never commits on its own.

    `event_type` must be an `EventType`; `data` must be JSON, name what the event is about
    (`user_id`, `image_id`, ... by the type's prefix) and hold no secret. A breach is a bug in
    the caller: ValueError.
    """
    known = _known_type(event_type)
    payload = _checked_data(known, data)
    if db.get_bind().dialect.name == "postgresql":
        db.execute(select(func.pg_advisory_xact_lock(OUTBOX_LOCK_KEY)))
    db.add(OutboxEvent(event_id=uuid.uuid4(), type=known.value, occurred_at=utcnow(), data=payload))


def _known_type(event_type: str) -> EventType:
    try:
        return EventType(event_type)
    except ValueError:
        raise ValueError(f"unknown event type {event_type!r}; add it to EventType") from None


def _checked_data(event_type: EventType, data: Mapping[str, Any]) -> dict[str, Any]:
    missing = REQUIRED_DATA_KEYS.get(event_type.split(".")[0], frozenset()) - data.keys()
    if missing:
        raise ValueError(f"{event_type} data lacks {', '.join(sorted(missing))}")
    _refuse_secret_keys(data)
    try:
        # A round trip: what is stored is exactly what handlers and the broker will see.
        return json.loads(json.dumps(data, allow_nan=False))
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{event_type} data is not JSON: {exc}") from None


def _refuse_secret_keys(value: object) -> None:
    if isinstance(value, Mapping):
        for key, item in value.items():
            words = _KEY_WORDS.findall(_CAMEL_BOUNDARY.sub("_", str(key)).lower())
            if _SECRET_WORDS & set(words):
                raise ValueError(f"event data must not hold secrets (key {key!r})")
            _refuse_secret_keys(item)
    elif isinstance(value, list | tuple):
        for item in value:
            _refuse_secret_keys(item)


def events_page(
    db: Session,
    page: PageParams,
    *,
    event_type: EventType | None = None,
    state: EventState | None = None,
) -> tuple[list[OutboxEvent], int]:
    """The outbox, newest first (by commit order), optionally of one type and state."""
    statement = select(OutboxEvent).order_by(OutboxEvent.id.desc())
    if event_type is not None:
        statement = statement.where(OutboxEvent.type == event_type.value)
    if state is not None:
        statement = statement.where(OutboxEvent.state == state.value)
    return fetch_page(db, statement, page)
