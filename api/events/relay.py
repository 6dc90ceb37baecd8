"""The relay: delivers committed outbox rows in id order, which is commit order.

One per API process, started and stopped in the app's lifespan. It sleeps until a commit of
this process wrote events (a session hook wakes it) or `EVENTS_POLL_INTERVAL_S` passes (the
safety net for events committed by other processes), then works in a thread, never on the
event loop.

- `EVENTS_BROKER_URL` empty: it runs the handlers itself. A row is claimed by one atomic
  conditional UPDATE whose subquery picks the oldest due row `FOR UPDATE SKIP LOCKED` (on
  PostgreSQL; SQLite's single writer makes the UPDATE atomic by itself): the claim moves the
  row's `next_attempt_at` past `EVENTS_CLAIM_TIMEOUT_S`, so other processes skip it and a
  process killed while handling leaves it to be claimed again when that time is up. A failed
  handler is retried after `EVENTS_RETRY_DELAYS_S`, then the event is `failed`.
- Set: it publishes to RabbitMQ with publisher confirms, one relay at a time (a
  transaction-scoped advisory lock on PostgreSQL, the write lock on SQLite), in batches: the
  rows are marked `published` in the transaction that publishes them, which commits only after
  the broker confirmed them. A crash before that commit publishes them again (at least once,
  never lost); a broker that fails mid-batch keeps the confirmed prefix `published` and the
  rest `pending`. While the broker is unreachable the relay backs off (1 s, doubling, at most
  `MAX_BROKER_BACKOFF_S`), recording `attempts` and `last_error` on the waiting rows; requests
  never wait for it. Later rows are never published before an earlier one.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import uuid
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import event as orm_event
from sqlalchemy import func, select, update
from sqlalchemy.orm import Session, UOWTransaction

from api.core.config import Settings
from api.core.db import Database, writes
from api.events.broker import BrokerPublisher, PublishFailed
from api.events.context import HandlerContext
from api.events.dispatch import failure_text, run_handlers
from api.events.outbox import (
    event_of,
    log_given_up,
    mark_handled,
    record_failure,
    retry_delay,
    retry_time,
)
from api.events.registry import HandlerRegistry
from api.models import EventState, OutboxEvent, utcnow

log = logging.getLogger("pixelgate.events")

# "pixelrel" in ASCII: one publishing relay at a time (see record_event for the outbox lock).
RELAY_LOCK_KEY = 0x706978656C72656C
PUBLISH_BATCH = 100
MAX_BROKER_BACKOFF_S = 60.0
_WROTE_EVENTS = "pixelgate.wrote_events"


@dataclass(frozen=True, slots=True)
class Pause:
    seconds: float
    wakeable: bool  # False while backing off: a new commit does not cut the wait short


class EventRelay:
    def __init__(
        self,
        database: Database,
        settings: Settings,
        registry: HandlerRegistry,
        context: HandlerContext,
    ) -> None:
        self._database = database
        self._settings = settings
        self._registry = registry
        self._context = context
        broker_url = settings.events_broker_url.get_secret_value()
        self._broker_url = broker_url
        self._publisher = BrokerPublisher(broker_url) if broker_url else None
        self._broker_failures = 0
        self._stopping = threading.Event()
        self._busy = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self._wake: asyncio.Event | None = None
        self._task: asyncio.Task[None] | None = None

    # --- lifecycle, on the event loop ---------------------------------------------------

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._wake = asyncio.Event()
        self._watch_commits(True)
        self._task = asyncio.create_task(self._run(), name="event-relay")

    async def stop(self) -> None:
        """Finishes the event or batch in hand, then returns (nothing is cut off mid-way)."""
        self._watch_commits(False)
        self._stopping.set()
        if self._wake is not None:
            self._wake.set()
        if self._task is not None:
            await self._task
        if self._publisher is not None:
            await asyncio.to_thread(self._publisher.close)

    def wake(self) -> None:
        """Thread-safe: called from whichever thread committed events."""
        loop, wake = self._loop, self._wake
        if loop is None or wake is None:
            return
        with contextlib.suppress(RuntimeError):  # the loop has closed: the app is stopping
            loop.call_soon_threadsafe(wake.set)

    async def _run(self) -> None:
        assert self._wake is not None
        while not self._stopping.is_set():
            self._wake.clear()
            try:
                pause = await asyncio.to_thread(self.relay_due_events)
            except Exception as exc:  # the database is unreachable, say: try again later
                log.warning("event relay failed: %s", type(exc).__name__, exc_info=True)
                pause = Pause(self._settings.events_poll_interval_s, wakeable=False)
            if self._stopping.is_set():
                return
            await self._sleep(pause)

    async def _sleep(self, pause: Pause) -> None:
        """Until the time is up or a stop; a wakeable pause also ends at the next commit
        that wrote events, a backoff does not (new events wait for the broker like the rest)."""
        assert self._wake is not None
        loop = asyncio.get_running_loop()
        deadline = loop.time() + pause.seconds
        while not self._stopping.is_set() and (remaining := deadline - loop.time()) > 0:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=remaining)
            if pause.wakeable:
                return
            self._wake.clear()

    def _watch_commits(self, on: bool) -> None:
        """Wakes the relay after a commit that wrote outbox rows (hooks on this database's
        sessions, so other apps' databases in one process do not wake it)."""
        hooks = (
            ("after_flush", self._note_outbox_rows),
            ("after_commit", self._wake_if_events_committed),
            ("after_rollback", self._forget_outbox_rows),
        )
        factory = self._database.session_factory
        for name, hook in hooks:
            if on:
                orm_event.listen(factory, name, hook)
            elif orm_event.contains(factory, name, hook):
                orm_event.remove(factory, name, hook)

    @staticmethod
    def _note_outbox_rows(session: Session, _flush_context: UOWTransaction) -> None:
        if any(isinstance(instance, OutboxEvent) for instance in session.new):
            session.info[_WROTE_EVENTS] = True

    def _wake_if_events_committed(self, session: Session) -> None:
        if session.info.pop(_WROTE_EVENTS, False):
            self.wake()

    @staticmethod
    def _forget_outbox_rows(session: Session) -> None:
        session.info.pop(_WROTE_EVENTS, None)

    # --- the work, blocking, in a thread ------------------------------------------------

    @property
    def busy(self) -> bool:
        """True while it delivers events (a batch, or one event's handlers)."""
        return self._busy

    def relay_due_events(self) -> Pause:
        """Delivers everything that is due now; says how long to wait before looking again."""
        self._busy = True
        try:
            if self._publisher is None:
                return self._handle_due_events()
            return self._publish_due_events(self._publisher)
        finally:
            self._busy = False

    def _handle_due_events(self) -> Pause:
        while not self._stopping.is_set():
            claimed = self._claim_next()
            if claimed is None:
                break
            self._handle(*claimed)
        return Pause(self._seconds_until_next_due(), wakeable=True)

    def _claim_next(self) -> tuple[OutboxEvent, int] | None:
        now = utcnow()
        pending = OutboxEvent.state == EventState.PENDING.value
        due = OutboxEvent.next_attempt_at <= now
        oldest_due = (
            select(OutboxEvent.id)
            .where(pending, due)
            .order_by(OutboxEvent.id)
            .limit(1)
            .with_for_update(skip_locked=True)
            .scalar_subquery()
        )
        claim_until = now + timedelta(seconds=self._settings.events_claim_timeout_s)
        with self._database.session() as db, writes(db):
            row = db.scalars(
                update(OutboxEvent)
                .where(OutboxEvent.id == oldest_due, pending, due)
                .values(next_attempt_at=claim_until)
                .returning(OutboxEvent)
                .execution_options(synchronize_session=False)
            ).one_or_none()
            return None if row is None else (row, row.attempts)

    def _handle(self, row: OutboxEvent, attempts: int) -> None:
        event = event_of(row)
        try:
            run_handlers(event, self._registry, self._context)
        except Exception as exc:
            error = failure_text(exc)
            failures = attempts + 1
            delay = retry_delay(self._settings.events_retry_delays_s, failures)
            with self._database.session() as db, writes(db):
                record_failure(db, [event.id], error, retry_time(delay))
            if delay is None:
                log_given_up(event, failures, error)
            return
        with self._database.session() as db, writes(db):
            mark_handled(db, event.id)

    def _seconds_until_next_due(self) -> float:
        poll = self._settings.events_poll_interval_s
        with self._database.session() as db:
            next_due = db.scalar(
                select(func.min(OutboxEvent.next_attempt_at)).where(
                    OutboxEvent.state == EventState.PENDING.value
                )
            )
        if next_due is None:
            return poll
        return min(poll, max(0.0, (next_due - utcnow()).total_seconds()))

    def _publish_due_events(self, publisher: BrokerPublisher) -> Pause:
        try:
            publisher.connect()
        except Exception as exc:
            return self._broker_failed(self._due_batch(), exc)
        while not self._stopping.is_set():
            try:
                more = self._publish_batch(publisher)
            except _BatchInterrupted as interrupted:
                return self._broker_failed(interrupted.event_ids, interrupted.cause)
            if not more:
                break
        self._broker_failures = 0
        return Pause(self._settings.events_poll_interval_s, wakeable=True)

    def _publish_batch(self, publisher: BrokerPublisher) -> bool:
        """Publishes the oldest pending rows; True when more may be waiting."""
        interrupted: _BatchInterrupted | None = None
        with self._database.session() as db, writes(db):
            if db.get_bind().dialect.name == "postgresql":
                db.execute(select(func.pg_advisory_xact_lock(RELAY_LOCK_KEY)))
            oldest = (
                select(OutboxEvent.id)
                .where(OutboxEvent.state == EventState.PENDING.value)
                .order_by(OutboxEvent.id)
                .limit(PUBLISH_BATCH)
            )
            # A write first: on SQLite it takes the write lock, so relays take turns.
            rows = sorted(
                db.scalars(
                    update(OutboxEvent)
                    .where(OutboxEvent.id.in_(oldest))
                    .values(state=EventState.PUBLISHED.value, published_at=utcnow())
                    .returning(OutboxEvent)
                    .execution_options(synchronize_session=False)
                ).all(),
                key=lambda row: row.id,
            )
            if not rows:
                return False
            try:
                publisher.publish([event_of(row) for row in rows])
            except PublishFailed as failure:
                # The confirmed prefix stays published; the rest waits for the next try.
                unconfirmed = [row.event_id for row in rows[failure.confirmed :]]
                db.execute(
                    update(OutboxEvent)
                    .where(OutboxEvent.event_id.in_(unconfirmed))
                    .values(state=EventState.PENDING.value, published_at=None)
                    .execution_options(synchronize_session=False)
                )
                interrupted = _BatchInterrupted(unconfirmed, failure.cause)
        if interrupted is not None:
            raise interrupted
        return len(rows) == PUBLISH_BATCH

    def _due_batch(self) -> list[uuid.UUID]:
        with self._database.session() as db:
            return list(
                db.scalars(
                    select(OutboxEvent.event_id)
                    .where(OutboxEvent.state == EventState.PENDING.value)
                    .order_by(OutboxEvent.id)
                    .limit(PUBLISH_BATCH)
                )
            )

    def _broker_failed(self, event_ids: list[uuid.UUID], cause: BaseException) -> Pause:
        """Backs off (1 s, doubling, at most MAX_BROKER_BACKOFF_S) and records the failed try
        on the rows that were to be published."""
        self._broker_failures += 1
        backoff = min(MAX_BROKER_BACKOFF_S, 2.0 ** (self._broker_failures - 1))
        error = _describe(cause, self._broker_url)
        log.warning("events not published, next try in %.0f s: %s", backoff, error)
        if event_ids:
            with self._database.session() as db, writes(db):
                record_failure(db, event_ids, error, retry_time(backoff))
        return Pause(backoff, wakeable=False)


class _BatchInterrupted(Exception):
    def __init__(self, event_ids: list[uuid.UUID], cause: BaseException) -> None:
        super().__init__(str(cause))
        self.event_ids = event_ids
        self.cause = cause


def _describe(exc: BaseException, secret_url: str = "") -> str:
    """An error for `last_error` and the log, without the broker URL's password."""
    text = f"{type(exc).__name__}: {exc}".strip().removesuffix(":")
    password = _password_of(secret_url)
    return text.replace(password, "***") if password else text


def _password_of(url: str) -> str:
    if "://" not in url or "@" not in url:
        return ""
    credentials = url.split("://", 1)[1].rsplit("@", 1)[0]
    return credentials.split(":", 1)[1] if ":" in credentials else ""
