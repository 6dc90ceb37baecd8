"""The engine's pool and unit of work on real databases: a stale PostgreSQL connection is
replaced before use (in the main pool and in the lookup's asyncpg pool), and SQLite's units
of work in one process take turns."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from sqlalchemy import func, select, text

from api.core import db as db_module
from api.core.db import Database, lookup_engine_url, writes
from api.core.security import PasswordHasher
from api.models import User
from api.services.authentication import LookupPath
from tests.support.accounts import register
from tests.support.concurrency import all_at_once


def test_a_pooled_postgresql_connection_killed_while_idle_is_replaced(
    postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Pinging on every checkout cost a round trip per request; a connection idle for
    PING_AFTER_IDLE_S is pinged, and one that the server dropped is swapped for a new one."""
    monkeypatch.setattr(db_module, "PING_AFTER_IDLE_S", 0.0)
    database = Database(postgres_url)
    try:
        with database.engine.connect() as connection:
            backend_pid = connection.execute(text("SELECT pg_backend_pid()")).scalar()
        killer = Database(postgres_url)
        with killer.engine.connect() as admin:
            admin.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": backend_pid})
            admin.commit()
        killer.dispose()
        with database.engine.connect() as connection:
            assert connection.execute(text("SELECT pg_backend_pid()")).scalar() != backend_pid
    finally:
        database.dispose()


def test_the_lookups_asyncpg_pool_replaces_a_connection_killed_while_idle(
    postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(db_module, "PING_AFTER_IDLE_S", 0.0)
    database = Database(postgres_url)
    assert database.lookup_engine is not None
    backend_pid = "SELECT pg_backend_pid()"

    async def pid_seen_by_the_lookup_pool() -> int:
        assert database.lookup_engine is not None
        async with database.lookup_engine.connect() as connection:
            return (await connection.execute(text(backend_pid))).scalar_one()

    async def scenario() -> tuple[int, int]:
        first = await pid_seen_by_the_lookup_pool()
        with database.engine.connect() as admin:
            admin.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": first})
            admin.commit()
        second = await pid_seen_by_the_lookup_pool()
        await database.dispose_lookup_engine()
        return first, second

    try:
        first, second = asyncio.run(scenario())
        assert second != first
    finally:
        database.dispose()


def test_only_a_plain_psycopg2_url_gets_an_asyncpg_lookup_pool() -> None:
    """Driver options are spelt differently by the two drivers: such a URL keeps the thread."""
    assert str(lookup_engine_url("postgresql+psycopg2://u:p@db:5432/app")) == (
        "postgresql+asyncpg://u:***@db:5432/app"
    )
    assert lookup_engine_url("postgresql+psycopg2://u@db/app?sslmode=require") is None
    assert lookup_engine_url("sqlite:///data/app.db") is None


def test_authenticated_requests_on_postgresql_await_their_lookup(
    make_client: Callable[..., Any], database_url: str
) -> None:
    """So that the suite's PostgreSQL run exercises the asyncpg path (and a revocation is seen
    on it at once), not a silent fallback to the thread."""
    with make_client() as client:
        authenticator = client.app.state.authenticator
        on_postgresql = database_url.startswith("postgresql")
        cached = client.app.state.user_cache is not None
        awaited = on_postgresql and not cached
        assert (authenticator.lookup_path is LookupPath.AWAITED) == awaited
        awaited = register(client, "awaited")
        headers = awaited["headers"]
        assert client.get("/auth/me", headers=headers).json()["username"] == "awaited"
        client.post("/auth/logout", json={"refresh_token": awaited["tokens"]["refresh_token"]})
        assert client.get("/auth/me", headers=headers).status_code == 401


def test_sqlite_units_of_work_in_one_process_take_turns(database_url: str) -> None:
    if not database_url.startswith("sqlite"):
        pytest.skip("PostgreSQL orders writers by its row locks")
    database = Database(database_url)
    inside = 0
    most_inside = 0
    count_lock = threading.Lock()

    def add_user(index: int) -> None:
        nonlocal inside, most_inside
        with database.session() as db, writes(db):
            with count_lock:
                inside += 1
                most_inside = max(most_inside, inside)
            db.add(
                User(
                    username=f"turns_{index}",
                    email=f"turns_{index}@example.com",
                    name="Turns",
                    password_hash="x",
                )
            )
            db.flush()
            with count_lock:
                inside -= 1

    try:
        all_at_once([lambda index=index: add_user(index) for index in range(8)])
        with database.session() as db:
            assert db.scalar(select(func.count(User.id))) == 8
        assert most_inside == 1
    finally:
        database.dispose()


def test_password_hashing_is_bounded_to_the_cores(monkeypatch: pytest.MonkeyPatch) -> None:
    """More logins than cores hash in turns, so the event loop keeps a core's share."""
    hasher = PasswordHasher(10, concurrency=2)  # ~80 ms a hash: long enough to overlap
    stored = hasher.hash("Str0ng!pass")
    running = 0
    most_running = 0
    lock = threading.Lock()
    real_verify = hasher._context.verify

    def counting_verify(password: str, password_hash: str) -> bool:
        nonlocal running, most_running
        with lock:
            running += 1
            most_running = max(most_running, running)
        try:
            return real_verify(password, password_hash)
        finally:
            with lock:
                running -= 1

    monkeypatch.setattr(hasher._context, "verify", counting_verify)
    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(lambda _: hasher.verify("Str0ng!pass", stored), range(16)))
    assert all(results)
    assert most_running == 2
