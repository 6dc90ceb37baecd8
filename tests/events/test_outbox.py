"""The outbox: an event commits or rolls back with its change; bad events are refused;
handlers run once per event id."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
from sqlalchemy import func, select

from api.core.config import Settings
from api.core.db import Database, writes
from api.core.mail import build_mailer
from api.events.context import HandlerContext
from api.events.dispatch import HandlersFailed, run_handlers
from api.events.registry import HandlerRegistry
from api.models import HandledEvent, OutboxEvent, User, utcnow
from api.schemas.event import Event, EventType
from api.services.events import record_event
from api.storage import LocalStorage


@pytest.fixture
def database(settings: Settings) -> Iterator[Database]:
    database = Database(settings.database_url)
    yield database
    database.dispose()


def _new_user(name: str) -> User:
    return User(username=name, email=f"{name}@example.com", name=name, password_hash="x")


def test_an_event_commits_with_its_change(database: Database) -> None:
    with database.session() as db:
        with writes(db):
            user = _new_user("alice")
            db.add(user)
            db.flush()
            record_event(db, EventType.USER_CREATED, {"user_id": user.id})
        row = db.scalars(select(OutboxEvent)).one()
    assert row.type == "user.created"
    assert row.data == {"user_id": user.id}
    assert row.state == "pending" and row.attempts == 0 and row.last_error is None
    assert isinstance(row.event_id, uuid.UUID)


def test_a_rolled_back_change_leaves_no_event(database: Database) -> None:
    with database.session() as db:
        with pytest.raises(RuntimeError, match="change fails"), writes(db):
            user = _new_user("bob")
            db.add(user)
            db.flush()
            record_event(db, EventType.USER_CREATED, {"user_id": user.id})
            raise RuntimeError("the change fails after its event")
        assert db.scalar(select(func.count()).select_from(OutboxEvent)) == 0
        assert db.scalar(select(func.count()).select_from(User)) == 0


def test_events_are_numbered_in_commit_order(database: Database) -> None:
    with database.session() as db:
        for number in range(3):
            with writes(db):
                record_event(db, EventType.USER_DELETED, {"user_id": number})
        assert list(db.scalars(select(OutboxEvent.data).order_by(OutboxEvent.id))) == [
            {"user_id": 0},
            {"user_id": 1},
            {"user_id": 2},
        ]


@pytest.mark.parametrize(
    ("event_type", "data", "message"),
    [
        ("user.exploded", {"user_id": 1}, "unknown event type"),
        ("user.created", {"name": "x"}, "lacks user_id"),
        ("image.uploaded", {"image_id": 1}, "lacks user_id"),
        ("user.created", {"user_id": 1, "reset_token": "abc"}, "secrets"),
        ("user.created", {"user_id": 1, "extra": {"passwordHash": "abc"}}, "secrets"),
        ("user.created", {"user_id": 1, "when": utcnow()}, "not JSON"),
    ],
)
def test_bad_events_are_refused(
    database: Database, event_type: str, data: dict[str, object], message: str
) -> None:
    with database.session() as db:
        with pytest.raises(ValueError, match=message), writes(db):
            record_event(db, event_type, data)
        assert db.scalar(select(func.count()).select_from(OutboxEvent)) == 0


def _stored_event(database: Database, user_id: int) -> Event:
    with database.session() as db:
        with writes(db):
            record_event(db, EventType.USER_DELETED, {"user_id": user_id})
        row = db.scalars(select(OutboxEvent).order_by(OutboxEvent.id.desc())).first()
        assert row is not None
        return Event(id=row.event_id, type=row.type, occurred_at=row.occurred_at, data=row.data)


def test_each_handler_runs_once_per_event_and_a_failure_delays_no_other(
    database: Database, settings: Settings
) -> None:
    calls: list[str] = []
    failing = {"yes": True}

    def steady(event: Event, context: HandlerContext) -> None:
        calls.append("steady")

    def flaky(event: Event, context: HandlerContext) -> None:
        calls.append("flaky")
        if failing["yes"]:
            raise OSError("disk full")

    registry = HandlerRegistry()
    registry.register(flaky, EventType.USER_DELETED)
    registry.register(steady)
    context = HandlerContext(
        settings, database, LocalStorage(settings.storage_dir), build_mailer(settings)
    )
    event = _stored_event(database, 7)

    with pytest.raises(HandlersFailed, match="flaky: OSError: disk full"):
        run_handlers(event, registry, context)
    assert calls == ["steady", "flaky"]

    failing["yes"] = False
    run_handlers(event, registry, context)  # a redelivery: only the failed one runs again
    run_handlers(event, registry, context)  # and then nothing
    assert calls == ["steady", "flaky", "flaky"]
    with database.session() as db:
        assert db.scalar(select(func.count()).select_from(HandledEvent)) == 2


def test_a_handler_cannot_be_registered_twice() -> None:
    registry = HandlerRegistry()

    def once(event: Event, context: HandlerContext) -> None:
        pass

    registry.register(once, EventType.USER_CREATED)
    with pytest.raises(ValueError, match="registered twice"):
        registry.register(once, EventType.USER_DELETED)
