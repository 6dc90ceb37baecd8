"""Engine and session factory; one `Database` per app so tests can run several side by side."""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import DisconnectionError, OperationalError
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.orm import Session, SessionTransaction, sessionmaker

SQLITE_BUSY_TIMEOUT_MS = 30_000
# Waiting for a pooled connection or for the writer's turn gives up as SQLite's wait does.
SQLITE_BUSY_TIMEOUT_S = SQLITE_BUSY_TIMEOUT_MS / 1000
# A server that accepts the connection but never answers would otherwise hang a request (or
# wait-for-db) for good: libpq waits forever by default. libpq's minimum is 2 seconds.
CONNECT_TIMEOUT_S = 10
# AnyIO's default thread-pool size (40 threads), plus the event loop's own reads.
SQLITE_POOL_SIZE = 41
# A pooled connection unused for this long is checked with a round trip before it is handed
# out (a server restart or an idle timeout may have closed it). Checking every checkout, as
# `pool_pre_ping` does, cost a round trip per request; one in use moments ago is alive, and
# if it is not, the error invalidates the whole pool at once.
PING_AFTER_IDLE_S = 10.0
POOL_RECYCLE_S = 1800
# The authenticated lookup's own pool (PostgreSQL): short reads awaited on the event loop, so a
# few connections serve many requests, and more lookups at once wait their turn on the loop. No
# overflow: under load, overflow connections were opened and closed again all the time (a
# server process forked for each).
LOOKUP_POOL_SIZE = 8
LOOKUP_MAX_OVERFLOW = 0


def create_db_engine(database_url: str, connect_timeout_s: int = CONNECT_TIMEOUT_S) -> Engine:
    # hide_parameters: a database error's message would otherwise quote every bound value
    # (password hashes, token digests) into the error log.
    url = make_url(database_url)
    if url.get_backend_name() != "sqlite":
        connect_args = (
            {"connect_timeout": connect_timeout_s}
            if url.get_driver_name() in ("psycopg2", "psycopg")
            else {}
        )
        engine = create_engine(
            url,
            pool_size=10,
            max_overflow=20,
            pool_recycle=POOL_RECYCLE_S,
            hide_parameters=True,
            connect_args=connect_args,
        )
        _ping_connections_idle_for(engine, PING_AFTER_IDLE_S)
        return engine

    if url.database and url.database != ":memory:":
        Path(url.database).parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(
        url,
        connect_args={"check_same_thread": False},
        hide_parameters=True,
        # As many as the thread pool runs at once: a connection opened past the pool's size is
        # closed again after use, and opening one costs its PRAGMAs and the WAL's set-up.
        pool_size=SQLITE_POOL_SIZE,
        max_overflow=10,
        pool_timeout=SQLITE_BUSY_TIMEOUT_S,
    )
    _make_sqlite_transactional(engine)
    return engine


def lookup_engine_url(database_url: str) -> URL | None:
    """The asyncpg twin of a psycopg2 PostgreSQL URL, for the lookup every authenticated
    request makes; None where there is none to trust (SQLite, another driver, or query
    options, which the two drivers spell differently)."""
    url = make_url(database_url)
    if url.get_backend_name() != "postgresql" or url.get_driver_name() != "psycopg2":
        return None
    if url.query:
        return None
    return url.set(drivername="postgresql+asyncpg")


def create_lookup_engine(url: URL, connect_timeout_s: int = CONNECT_TIMEOUT_S) -> AsyncEngine:
    engine = create_async_engine(
        url,
        pool_size=LOOKUP_POOL_SIZE,
        max_overflow=LOOKUP_MAX_OVERFLOW,
        pool_recycle=POOL_RECYCLE_S,
        hide_parameters=True,
        connect_args={"timeout": connect_timeout_s},
    )
    _ping_connections_idle_for(engine.sync_engine, PING_AFTER_IDLE_S)
    return engine


def _ping_connections_idle_for(engine: Engine, idle_s: float) -> None:
    dbapi_error = engine.dialect.loaded_dbapi.Error

    @event.listens_for(engine, "checkin")
    def _on_checkin(_dbapi_connection, record) -> None:  # type: ignore[no-untyped-def]
        record.info[_CHECKED_IN_AT] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def _on_checkout(dbapi_connection, record, _proxy) -> None:  # type: ignore[no-untyped-def]
        checked_in_at = record.info.get(_CHECKED_IN_AT)
        if checked_in_at is None or time.monotonic() - checked_in_at < idle_s:
            return
        try:
            cursor = dbapi_connection.cursor()
            cursor.execute("SELECT 1")
            cursor.close()
        except dbapi_error as exc:
            # The pool drops this connection and hands out a new one.
            raise DisconnectionError("stale pooled connection") from exc


_CHECKED_IN_AT = "pixelgate.checked_in_at"


def _make_sqlite_transactional(engine: Engine) -> None:
    """Let SQLAlchemy, not pysqlite, open transactions, so DDL and migrations are atomic too.

    This is SQLAlchemy's documented recipe for pysqlite's legacy transaction handling, plus
    WAL (readers never wait for the writer) and a busy timeout instead of instant failures.
    """

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection, _record) -> None:  # type: ignore[no-untyped-def]
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection) -> None:  # type: ignore[no-untyped-def]
        connection.exec_driver_sql("BEGIN")


def _end_read_transaction(db: Session) -> None:
    """Ends a transaction that has only read, so that the writes after it start a new one.

    On SQLite a transaction that has read cannot write once another connection has committed
    since: the write fails at once ("database is locked") instead of waiting its turn, which a
    transaction that starts with a write does (busy timeout). Committing reads costs nothing
    and keeps loaded objects usable (expire_on_commit=False).
    """
    db.commit()


@contextmanager
def writes(db: Session) -> Iterator[Session]:
    """The one unit of work: everything a change writes commits together or not at all.

    Entering ends the read transaction (the SQLite rule above lives here and only here);
    leaving commits, an exception rolls back. A `writes` inside another one joins it, so a
    service called by another service never commits on its own. Changes made to the session
    outside a unit of work are a bug, and are refused rather than committed by accident.
    """
    if db.info.get(_IN_UNIT_OF_WORK):
        yield db
        return
    if db.new or db.dirty or db.deleted:
        raise RuntimeError("changes were made to the session outside a unit of work")
    _end_read_transaction(db)
    with _writer_turn(db):
        db.info[_IN_UNIT_OF_WORK] = True
        try:
            yield db
            db.commit()
        except BaseException:
            db.rollback()
            raise
        finally:
            db.info.pop(_IN_UNIT_OF_WORK, None)


@contextmanager
def _writer_turn(db: Session) -> Iterator[None]:
    """SQLite: this process's units of work take turns, first come first served.

    SQLite admits one writer at a time; the others poll, sleeping up to 100 ms between
    tries, so under contention some waited a second while others got in repeatedly (refresh
    p99 ~1 s at 16 concurrent sessions). A lock queues them instead. Other processes are
    still ordered by SQLite's busy timeout.
    """
    lock = db.info.get(_WRITER_LOCK)
    if lock is None:
        yield
        return
    if not lock.acquire(timeout=SQLITE_BUSY_TIMEOUT_S):
        raise OperationalError("BEGIN", None, sqlite3.OperationalError("database is locked"))
    try:
        yield
    finally:
        lock.release()


_IN_UNIT_OF_WORK = "pixelgate.in_unit_of_work"
_WRITER_LOCK = "pixelgate.writer_lock"
_AFTER_COMMIT = "pixelgate.after_commit"


def after_commit(db: Session, action: Callable[[], None]) -> None:
    """Runs `action` once the session's current transaction has committed, and never if it
    rolls back: for what must only reflect a change that really happened (metrics)."""
    db.info.setdefault(_AFTER_COMMIT, []).append(action)


@event.listens_for(Session, "after_commit")
def _run_after_commit(session: Session) -> None:
    for action in session.info.pop(_AFTER_COMMIT, ()):
        action()


@event.listens_for(Session, "after_rollback")
def _forget_after_commit(session: Session) -> None:
    session.info.pop(_AFTER_COMMIT, None)


_HOLDS_CONNECTION = "pixelgate.holds_connection"


def holds_connection(db: Session) -> bool:
    """Whether the session's transaction has a pooled connection: only then can closing it
    wait on the database (a rollback)."""
    return bool(db.info.get(_HOLDS_CONNECTION))


@event.listens_for(Session, "after_begin")
def _note_connection(session: Session, _transaction: object, _connection: object) -> None:
    session.info[_HOLDS_CONNECTION] = True


@event.listens_for(Session, "after_transaction_end")
def _note_released(session: Session, transaction: SessionTransaction) -> None:
    if transaction.parent is None:
        session.info.pop(_HOLDS_CONNECTION, None)


class Database:
    """Owns the engine and hands out sessions."""

    def __init__(self, database_url: str, connect_timeout_s: int = CONNECT_TIMEOUT_S) -> None:
        self.engine = create_db_engine(database_url, connect_timeout_s)
        # SQLite: a file on this machine, no server to wait for over a network.
        self.is_embedded = self.engine.dialect.name == "sqlite"
        # Reentrant: a unit of work that (wrongly) opened another would wait for itself.
        info = {_WRITER_LOCK: threading.RLock()} if self.is_embedded else {}
        self.session_factory = sessionmaker(self.engine, expire_on_commit=False, info=info)
        # PostgreSQL: the authenticated lookup awaits its round trip on the event loop rather
        # than in a thread, which then has to win the GIL back from the loop (the costlier part).
        lookup_url = lookup_engine_url(database_url)
        self.lookup_engine = (
            create_lookup_engine(lookup_url, connect_timeout_s) if lookup_url else None
        )

    @contextmanager
    def session(self) -> Iterator[Session]:
        with self.session_factory() as session:
            yield session

    def is_reachable(self) -> bool:
        try:
            with self.engine.connect() as connection:
                connection.execute(text("SELECT 1"))
        except Exception:
            return False
        return True

    def dispose(self) -> None:
        self.engine.dispose()

    async def dispose_lookup_engine(self) -> None:
        """On the event loop its connections were made on (asyncpg's are bound to one)."""
        if self.lookup_engine is not None:
            await self.lookup_engine.dispose()
