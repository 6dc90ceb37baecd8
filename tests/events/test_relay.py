"""The relay without a broker: handlers run in the API process right after the commit, failures
are retried with backoff and then given up, several relays never handle one event twice, a
relay killed mid-way loses nothing, and PostgreSQL's ids follow commit order."""

from __future__ import annotations

import itertools
import logging
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select, text

from api.core.config import Settings
from api.core.db import Database, writes
from api.events.context import HandlerContext
from api.events.registry import HandlerRegistry
from api.events.relay import EventRelay
from api.models import OutboxEvent
from api.schemas.event import Event, EventType
from api.services.events import record_event
from tests.events.conftest import TEST_RETRY_DELAYS_S
from tests.support.accounts import register, signup
from tests.support.events import app_events_settled, outbox_rows, wait_for_events_settled
from tests.support.paths import REPO_ROOT


@pytest.fixture
def database(settings: Settings) -> Iterator[Database]:
    database = Database(settings.database_url)
    yield database
    database.dispose()


def _relay(
    database: Database, settings: Settings, *handlers: Callable[[Event, HandlerContext], None]
) -> EventRelay:
    registry = HandlerRegistry()
    for handler in handlers:
        registry.register(handler)
    context = HandlerContext.from_settings(settings, database)
    return EventRelay(database, settings, registry, context)


def _record(database: Database, count: int, event_type: EventType = EventType.USER_DELETED) -> None:
    with database.session() as db:
        for number in range(count):
            with writes(db):
                record_event(db, event_type, {"user_id": number})


def test_the_app_handles_events_right_after_the_commit_not_at_the_next_poll(
    make_client: Callable[..., Any],
) -> None:
    with make_client(events_poll_interval_s=600) as client:
        created = signup(client, "alice")
        assert created.status_code == 201
        (row,) = app_events_settled(client, timeout=10)
    assert (row.type, row.state, row.attempts) == ("user.created", "handled", 0)
    assert row.data == {"user_id": created.json()["id"], "username": "alice"}
    assert row.handled_at is not None


def test_a_change_that_is_refused_records_no_event(client: Any) -> None:
    register(client, "alice")
    assert signup(client, "alice").status_code == 409  # the same name again
    rows = app_events_settled(client)
    assert [row.type for row in rows] == ["user.created"]


def test_a_failing_handler_is_retried_with_backoff_then_given_up_and_logged(
    database: Database, make_settings: Callable[..., Settings], caplog: pytest.LogCaptureFixture
) -> None:
    settings = make_settings(events_retry_delays_s=TEST_RETRY_DELAYS_S)
    tries: list[float] = []

    def broken(event: Event, context: HandlerContext) -> None:
        tries.append(time.monotonic())
        raise ConnectionRefusedError("mail server down")

    relay = _relay(database, settings, broken)
    _record(database, 1)
    relay.relay_due_events()
    (row,) = outbox_rows(database)
    assert (row.state, row.attempts) == ("pending", 1)
    assert "ConnectionRefusedError: mail server down" in (row.last_error or "")
    assert row.next_attempt_at > row.occurred_at  # not due again at once: backoff

    with caplog.at_level(logging.ERROR, logger="pixelgate.events"):
        deadline = time.monotonic() + 10
        while outbox_rows(database)[0].state == "pending" and time.monotonic() < deadline:
            time.sleep(relay.relay_due_events().seconds)
    (row,) = outbox_rows(database)
    assert (row.state, row.attempts) == ("failed", 3)  # the first try and two retries
    assert len(tries) == 3
    gaps = [later - earlier for earlier, later in itertools.pairwise(tries)]
    assert gaps[0] >= TEST_RETRY_DELAYS_S[0] and gaps[1] >= TEST_RETRY_DELAYS_S[1]
    given_up = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert len(given_up) == 1 and "given up after 3 attempts" in given_up[0].getMessage()


def test_a_handler_that_recovers_is_not_given_up(
    database: Database, make_settings: Callable[..., Settings]
) -> None:
    settings = make_settings(events_retry_delays_s=TEST_RETRY_DELAYS_S)
    outcomes = iter([OSError("once")])

    def flaky(event: Event, context: HandlerContext) -> None:
        failure = next(outcomes, None)
        if failure is not None:
            raise failure

    relay = _relay(database, settings, flaky)
    _record(database, 1)
    relay.relay_due_events()
    time.sleep(TEST_RETRY_DELAYS_S[0])
    relay.relay_due_events()
    (row,) = outbox_rows(database)
    assert (row.state, row.attempts) == ("handled", 1)
    assert (row.last_error or "").endswith("flaky: OSError: once")  # kept, as history


def test_two_relays_never_handle_one_event_twice(database: Database, settings: Settings) -> None:
    handled: Counter[str] = Counter()
    lock = threading.Lock()

    def count(event: Event, context: HandlerContext) -> None:
        with lock:
            handled[str(event.id)] += 1
        time.sleep(0.005)  # hold the claim a moment, so that the relays overlap

    _record(database, 40)
    other_database = Database(settings.database_url)  # as another process would have
    try:
        relays = [_relay(database, settings, count), _relay(other_database, settings, count)]
        threads = [threading.Thread(target=relay.relay_due_events) for relay in relays]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
    finally:
        other_database.dispose()
    rows = wait_for_events_settled(database, timeout=1)
    assert len(rows) == 40 and {row.state for row in rows} == {"handled"}
    assert len(handled) == 40 and set(handled.values()) == {1}


KILLED_RELAY = """
import sys, time
from api.core.config import Settings
from api.core.db import Database
from api.events.context import HandlerContext
from api.events.registry import HandlerRegistry
from api.events.relay import EventRelay

def hang(event, context):
    open(sys.argv[2], "w").write(str(event.id))
    time.sleep(600)

settings = Settings(
    _env_file=None, database_url=sys.argv[1], events_claim_timeout_s=float(sys.argv[3])
)
database = Database(settings.database_url)
registry = HandlerRegistry()
registry.register(hang)
context = HandlerContext.from_settings(settings, database)
EventRelay(database, settings, registry, context).relay_due_events()
"""


def test_a_relay_killed_while_handling_loses_nothing(
    database: Database, make_settings: Callable[..., Settings], tmp_path: Path
) -> None:
    # Long enough that a loaded machine checks "not yet" before the dead process's claim runs out.
    claim_timeout_s = 3.0
    settings = make_settings(events_claim_timeout_s=claim_timeout_s)
    _record(database, 1)
    started = tmp_path / "started"
    process = subprocess.Popen(
        [
            sys.executable,
            "-c",
            KILLED_RELAY,
            settings.database_url,
            str(started),
            str(claim_timeout_s),
        ],
        cwd=REPO_ROOT,
    )
    try:
        deadline = time.monotonic() + 60
        while not started.exists() and process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert started.exists(), "the relay process never started handling"
    finally:
        process.kill()
        process.wait()

    handled: list[str] = []
    relay = _relay(database, settings, lambda event, context: handled.append(str(event.id)))
    relay.relay_due_events()  # still claimed by the dead process: not yet
    assert handled == []
    time.sleep(claim_timeout_s)  # the claim was made before `started` appeared
    relay.relay_due_events()
    assert handled == [started.read_text()]
    (row,) = outbox_rows(database)
    assert row.state == "handled"


def test_postgresql_numbers_events_in_commit_order(database: Database) -> None:
    """A transaction that writes an event waits for an earlier one that did, so the later
    commit always has the higher id (without the lock, ids follow insert order)."""
    if database.engine.dialect.name != "postgresql":
        pytest.skip("SQLite has one writer at a time: ids are in commit order anyway")
    first = database.session_factory()
    first.begin()
    record_event(first, EventType.USER_CREATED, {"user_id": 1})
    first.flush()  # id allocated, not committed

    def second_transaction() -> None:
        with database.session() as db, writes(db):
            record_event(db, EventType.USER_CREATED, {"user_id": 2})

    second = threading.Thread(target=second_transaction)
    second.start()
    try:
        _wait_until_waiting_for_a_lock(database)
    finally:
        first.commit()
        first.close()
    second.join(30)
    with database.session() as db:
        ordered = db.scalars(select(OutboxEvent.data).order_by(OutboxEvent.id)).all()
    assert ordered == [{"user_id": 1}, {"user_id": 2}]


def _wait_until_waiting_for_a_lock(database: Database) -> None:
    deadline = time.monotonic() + 30
    with database.engine.connect() as connection:
        while time.monotonic() < deadline:
            waiting = connection.scalar(
                select(func.count())
                .select_from(text("pg_locks"))
                .where(text("locktype = 'advisory' AND NOT granted"))
            )
            if waiting:
                return
            connection.rollback()
            time.sleep(0.02)
    raise AssertionError("the second transaction never waited for the first")
