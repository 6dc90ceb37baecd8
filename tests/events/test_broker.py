"""Events through the local RabbitMQ (a vhost of this test run): the relay publishes committed
events in order as persistent JSON, keeps them across a broker outage and a killed relay, and
`python -m api.consumer` handles each one once, retries failures and dead-letters what keeps
failing."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pika
import pytest

from api.core.config import Settings
from api.core.db import Database, writes
from api.events import broker
from api.events.consumer import EventConsumer
from api.events.context import HandlerContext
from api.events.registry import HandlerRegistry
from api.events.relay import EventRelay
from api.schemas.event import Event, EventType
from api.services.events import record_event
from tests.events.conftest import TEST_RETRY_DELAYS_S
from tests.support.accounts import ADMIN_USERNAME, admin_settings, login_headers, register
from tests.support.broker import (
    EventTap,
    TcpProxy,
    consumer_is_healthy,
    consumer_process,
    queue_depth,
)
from tests.support.events import outbox_rows, wait_for_events_settled
from tests.support.images import upload_image
from tests.support.paths import REPO_ROOT
from tests.support.servers import api_env

PUBLISHED = frozenset({"published"})
HANDLED = frozenset({"handled"})


@pytest.fixture
def tap(broker_url: str) -> Iterator[EventTap]:
    observer = EventTap(broker_url)
    yield observer
    observer.close()


@pytest.fixture
def database(settings: Settings) -> Iterator[Database]:
    database = Database(settings.database_url)
    yield database
    database.dispose()


def _record(database: Database, count: int) -> None:
    with database.session() as db:
        for number in range(count):
            with writes(db):
                record_event(db, EventType.USER_DELETED, {"user_id": number})


def _relay(database: Database, settings: Settings) -> EventRelay:
    context = HandlerContext.from_settings(settings, database)
    return EventRelay(database, settings, HandlerRegistry(), context)


def test_committed_events_are_published_in_commit_order_as_persistent_json(
    make_client: Callable[..., Any], broker_url: str, tap: EventTap
) -> None:
    with make_client(events_broker_url=broker_url) as client:
        alice = register(client, "alice")
        upload_image(client, alice["headers"])
        rows = wait_for_events_settled(client.app.state.database, settled=PUBLISHED, count=2)
        messages = tap.take(2)

    assert [row.type for row in rows] == ["user.created", "image.uploaded"]
    assert [method.routing_key for method, _, _ in messages] == ["user.created", "image.uploaded"]
    for row, (method, properties, body) in zip(rows, messages, strict=True):
        assert method.exchange == "pixelgate.events"
        assert properties.content_type == "application/json"
        assert properties.delivery_mode == pika.DeliveryMode.Persistent.value
        assert properties.message_id == str(row.event_id)
        message = json.loads(body)
        assert set(message) == {"id", "type", "occurred_at", "data"}
        assert (message["id"], message["type"]) == (str(row.event_id), row.type)
        assert message["data"] == row.data
        assert row.attempts == 0 and row.published_at is not None
    # Nobody consumes yet: the durable queue the relay declared keeps them.
    assert queue_depth(broker_url, broker.QUEUE) == 2


def test_a_broker_outage_delays_publishing_and_loses_nothing(
    make_client: Callable[..., Any], broker_url: str, tap: EventTap
) -> None:
    target = urlsplit(broker_url)
    proxy = TcpProxy(target.hostname or "127.0.0.1", target.port or 5672)
    proxied_url = broker_url.replace(f"{target.hostname}:{target.port}", f"127.0.0.1:{proxy.port}")
    proxy.up()
    try:
        with make_client(events_broker_url=proxied_url) as client:
            database = client.app.state.database
            register(client, "before")
            wait_for_events_settled(database, settled=PUBLISHED, count=1)

            proxy.down()
            started = time.monotonic()
            for name in ("during1", "during2", "during3"):
                register(client, name)  # requests do not wait for the broker
            assert time.monotonic() - started < 20
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                waiting = [row for row in outbox_rows(database) if row.state == "pending"]
                if len(waiting) == 3 and all(row.attempts and row.last_error for row in waiting):
                    break
                time.sleep(0.1)
            else:
                raise AssertionError(f"failed tries not recorded: {outbox_rows(database)}")
            assert "guest" not in (waiting[0].last_error or "")  # the URL's password is not

            proxy.up()
            rows = wait_for_events_settled(database, settled=PUBLISHED, count=4, timeout=90)
    finally:
        proxy.down()
    messages = tap.take(4)
    assert [json.loads(body)["id"] for _, _, body in messages] == [str(r.event_id) for r in rows]
    assert tap.left() == 0  # nothing published twice


KILLED_PUBLISHER = """
import sys, time
from api.core.config import Settings
from api.core.db import Database
from api.events import broker
from api.events.context import HandlerContext
from api.events.registry import HandlerRegistry
from api.events.relay import EventRelay

publish_one = broker.BrokerPublisher.publish

def publish_then_hang(self, events):
    publish_one(self, events[:1])
    open(sys.argv[3], "w").write("published one")
    time.sleep(600)

broker.BrokerPublisher.publish = publish_then_hang
settings = Settings(_env_file=None, database_url=sys.argv[1], events_broker_url=sys.argv[2])
database = Database(settings.database_url)
context = HandlerContext.from_settings(settings, database)
EventRelay(database, settings, HandlerRegistry(), context).relay_due_events()
"""


def test_a_relay_killed_while_publishing_loses_nothing(
    database: Database,
    make_settings: Callable[..., Settings],
    broker_url: str,
    tap: EventTap,
    tmp_path: Path,
) -> None:
    settings = make_settings(events_broker_url=broker_url)
    _record(database, 3)
    started = tmp_path / "started"
    process = subprocess.Popen(
        [sys.executable, "-c", KILLED_PUBLISHER, settings.database_url, broker_url, str(started)],
        cwd=REPO_ROOT,
    )
    try:
        deadline = time.monotonic() + 60
        while not started.exists() and process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert started.exists(), "the relay process never published"
    finally:
        process.kill()
        process.wait()
    assert {row.state for row in outbox_rows(database)} == {"pending"}  # rolled back with it

    _relay(database, settings).relay_due_events()
    rows = wait_for_events_settled(database, settled=PUBLISHED, count=3, timeout=5)
    published = [json.loads(body)["id"] for _, _, body in tap.take(4)]
    # At least once: the first was published by the killed relay and again by the next one.
    assert published == [str(rows[0].event_id)] + [str(row.event_id) for row in rows]


def _consumer_env(settings: Settings, tmp_path: Path, **extra: str) -> dict[str, str]:
    return api_env(
        settings.database_url,
        settings.storage_dir,
        EVENTS_BROKER_URL=settings.events_broker_url.get_secret_value(),
        EVENTS_RETRY_DELAYS_S=",".join(str(delay) for delay in TEST_RETRY_DELAYS_S),
        EVENTS_CONSUMER_HEARTBEAT_FILE=str(tmp_path / "consumer.alive"),
        **extra,
    )


def test_the_consumer_process_handles_every_event_once_and_alone_cleans_up_files(
    make_client: Callable[..., Any], broker_url: str, tmp_path: Path
) -> None:
    with make_client(events_broker_url=broker_url, **admin_settings()) as client:
        database = client.app.state.database
        settings = client.app.state.settings
        admin = login_headers(client, ADMIN_USERNAME)
        member = register(client, "member")
        for _ in range(2):
            upload_image(client, member["headers"])
        files = sorted(settings.storage_dir.glob("*.png"))
        assert len(files) == 2
        wait_for_events_settled(database, settled=PUBLISHED, count=4)
        assert client.delete(f"/users/{member['user']['id']}", headers=admin).status_code == 204

        # Published, but the API runs no handler in this mode: the files are still there.
        wait_for_events_settled(database, settled=PUBLISHED, count=5)
        assert all(path.exists() for path in files)

        env = _consumer_env(settings, tmp_path)
        assert not consumer_is_healthy(env)
        with consumer_process(env, tmp_path / "consumer.log"):
            rows = wait_for_events_settled(database, settled=HANDLED, count=5)
            assert consumer_is_healthy(env)
        assert not any(path.exists() for path in files)
    assert [row.type for row in rows] == [
        "user.created",  # the admin's
        "user.created",
        "image.uploaded",
        "image.uploaded",
        "user.deleted",
    ]
    log = (tmp_path / "consumer.log").read_text()
    assert log.count("event user.deleted") == 1  # the log handler, once per event
    assert queue_depth(broker_url, broker.QUEUE) == 0


@pytest.fixture
def consumer_thread(
    make_settings: Callable[..., Settings], broker_url: str, database: Database
) -> Iterator[Callable[[HandlerRegistry], None]]:
    """Runs an EventConsumer with the given handlers in a thread until the test ends."""
    settings = make_settings(
        events_broker_url=broker_url, events_retry_delays_s=TEST_RETRY_DELAYS_S
    )
    stop = threading.Event()
    threads: list[threading.Thread] = []

    def start(registry: HandlerRegistry) -> None:
        context = HandlerContext.from_settings(settings, database)
        consumer = EventConsumer(settings, registry, context)
        thread = threading.Thread(target=consumer.run, args=(stop,), daemon=True)
        thread.start()
        threads.append(thread)

    yield start
    stop.set()
    for thread in threads:
        thread.join(30)


def test_a_failing_handler_is_retried_then_dead_lettered(
    database: Database,
    make_settings: Callable[..., Settings],
    broker_url: str,
    consumer_thread: Callable[[HandlerRegistry], None],
    caplog: pytest.LogCaptureFixture,
) -> None:
    tries: dict[int, list[float]] = {}

    def sometimes_broken(event: Event, context: HandlerContext) -> None:
        user_id = event.data["user_id"]
        tries.setdefault(user_id, []).append(time.monotonic())
        if user_id == 0 or len(tries[user_id]) == 1:
            raise TimeoutError("smtp timed out")  # user 0 always, user 1 only the first time

    registry = HandlerRegistry()
    registry.register(sometimes_broken)
    _record(database, 2)
    _relay(database, make_settings(events_broker_url=broker_url)).relay_due_events()
    with caplog.at_level(logging.ERROR, logger="pixelgate.events"):
        consumer_thread(registry)
        given_up, recovered = wait_for_events_settled(
            database, settled=frozenset({"handled", "failed"}), count=2
        )
    assert (given_up.state, given_up.attempts) == ("failed", 3)
    assert "TimeoutError: smtp timed out" in (given_up.last_error or "")
    assert (recovered.state, recovered.attempts) == ("handled", 1)
    first, second, third = tries[0]
    assert second - first >= TEST_RETRY_DELAYS_S[0] and third - second >= TEST_RETRY_DELAYS_S[1]
    assert len(tries[1]) == 2
    assert queue_depth(broker_url, broker.DEAD_LETTER_QUEUE) == 1
    assert [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR] == [
        f"event given up after 3 attempts: user.deleted {given_up.event_id}: {given_up.last_error}"
    ]


KILLED_CONSUMER = """
import sys, threading, time
from api.core.config import Settings
from api.core.db import Database
from api.events.consumer import EventConsumer
from api.events.context import HandlerContext
from api.events.registry import HandlerRegistry

database_url, broker_url, journal, mode = sys.argv[1:5]

def first(event, context):
    with open(journal, "a") as out:
        out.write(f"first {event.id}\\n")

def second(event, context):
    with open(journal, "a") as out:
        out.write(f"second {event.id} {mode}\\n")
    if mode == "hang":
        time.sleep(600)

settings = Settings(
    _env_file=None, database_url=database_url, events_broker_url=broker_url,
    events_consumer_heartbeat_file=journal + ".alive",
)
database = Database(settings.database_url)
registry = HandlerRegistry()
registry.register(first)
registry.register(second)
EventConsumer(
    settings, registry, HandlerContext.from_settings(settings, database)
).run(threading.Event())
"""


def test_a_consumer_killed_mid_event_has_it_redelivered_and_no_handler_runs_twice(
    database: Database,
    make_settings: Callable[..., Settings],
    broker_url: str,
    tmp_path: Path,
) -> None:
    settings = make_settings(events_broker_url=broker_url)
    _record(database, 1)
    _relay(database, settings).relay_due_events()
    journal = tmp_path / "journal"

    def run_consumer(mode: str) -> subprocess.Popen[bytes]:
        arguments = [settings.database_url, broker_url, str(journal), mode]
        return subprocess.Popen([sys.executable, "-c", KILLED_CONSUMER, *arguments], cwd=REPO_ROOT)

    hanging = run_consumer("hang")
    try:
        deadline = time.monotonic() + 60
        while "second" not in _read(journal) and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        hanging.kill()
        hanging.wait()
    finishing = run_consumer("finish")
    try:
        (row,) = wait_for_events_settled(database, settled=HANDLED, count=1)
    finally:
        finishing.terminate()
        finishing.wait(30)
    assert _read(journal).splitlines() == [
        f"first {row.event_id}",
        f"second {row.event_id} hang",
        f"second {row.event_id} finish",  # redelivered; `first` had finished: not again
    ]


def _read(path: Path) -> str:
    return path.read_text() if path.exists() else ""
