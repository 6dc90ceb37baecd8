"""Domain events in tests: waiting for the relay, reading the outbox."""

from __future__ import annotations

import time
from typing import Any

from sqlalchemy import exists, select

from api.core.db import Database
from api.models import EventState, OutboxEvent, utcnow

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


def wait_for_relay_idle(client: Any, timeout: float = EVENT_TIMEOUT_S) -> None:
    """Waits until a TestClient app's relay has nothing due and is not delivering: its commits
    then no longer interleave with a test's own session (on SQLite a transaction that read
    cannot write once another connection committed). Backoffs are not waited for."""
    relay = getattr(client.app.state, "event_relay", None)
    if relay is None:
        return
    due = exists().where(
        OutboxEvent.state == EventState.PENDING.value, OutboxEvent.next_attempt_at <= utcnow()
    )
    deadline = time.monotonic() + timeout
    while True:
        with client.app.state.database.session() as db:
            idle = not relay.busy and not db.scalar(select(due))
        if idle and not relay.busy:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"the event relay was still busy after {timeout} s")
        time.sleep(0.02)
