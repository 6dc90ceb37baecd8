"""Domain events in tests: waiting for the relay, reading the outbox."""

from __future__ import annotations

import time
from typing import Any

from sqlalchemy import select

from api.core.db import Database
from api.models import EventState, OutboxEvent

EVENT_TIMEOUT_S = 20.0


def outbox_rows(database: Database) -> list[OutboxEvent]:
    with database.session() as db:
        return list(db.scalars(select(OutboxEvent).order_by(OutboxEvent.id)))


def wait_for_events_settled(
    database: Database,
    *,
    settled: frozenset[str] = frozenset({EventState.HANDLED.value, EventState.FAILED.value}),
    count: int | None = None,
    timeout: float = EVENT_TIMEOUT_S,
) -> list[OutboxEvent]:
    """Waits until every outbox row (and at least `count` of them) is in a `settled` state;
    returns the rows. Fails the test on timeout, saying which rows are not."""
    deadline = time.monotonic() + timeout
    while True:
        rows = outbox_rows(database)
        waiting = [row for row in rows if row.state not in settled]
        if not waiting and (count is None or len(rows) >= count):
            return rows
        if time.monotonic() > deadline:
            described = [(row.type, row.state, row.attempts, row.last_error) for row in waiting]
            raise AssertionError(f"events not settled within {timeout} s: {described}")
        time.sleep(0.05)


def app_events_settled(client: Any, **kwargs: Any) -> list[OutboxEvent]:
    """`wait_for_events_settled` on a TestClient app's own database."""
    return wait_for_events_settled(client.app.state.database, **kwargs)
