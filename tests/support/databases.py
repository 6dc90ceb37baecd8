"""The databases tests run on: migrations, fresh PostgreSQL and Redis databases, and helpers
to look at tables."""

from __future__ import annotations

import os
import random
import uuid
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import Any

import pytest
import redis
from alembic.config import Config
from sqlalchemy import create_engine, event, inspect, text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session

from alembic import command
from api.models import Base
from tests.support.events import wait_for_relay_idle
from tests.support.paths import REPO_ROOT

POSTGRES_SERVER_URL = os.environ.get(
    "TEST_POSTGRES_URL", "postgresql+psycopg2://postgres@127.0.0.1:5432/postgres"
)
REQUIRE_POSTGRES = os.environ.get("PIXELGATE_REQUIRE_POSTGRES") == "1"
BACKENDS = [
    b for b in os.environ.get("PIXELGATE_TEST_BACKENDS", "sqlite,postgresql").split(",") if b
]
REDIS_SERVER_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379")


def alembic_config(database_url: str) -> Config:
    config = Config(str(REPO_ROOT / "alembic.ini"))
    config.set_main_option("sqlalchemy.url", database_url.replace("%", "%%"))
    config.attributes["configure_logger"] = False
    return config


def migrate(database_url: str, revision: str = "head") -> None:
    command.upgrade(alembic_config(database_url), revision)


def postgres_reachable(server_url: str = POSTGRES_SERVER_URL) -> bool:
    engine = create_engine(server_url, connect_args={"connect_timeout": 3})
    try:
        with engine.connect() as connection:
            connection.execute(text("SELECT 1"))
        return True
    except Exception:
        return False
    finally:
        engine.dispose()


@contextmanager
def fresh_postgres_database(server_url: str) -> Iterator[str]:
    """A new, empty database on the server `server_url` points at; yields its URL and drops it
    afterwards, even while other processes still hold connections to it."""
    name = f"pixelgate_test_{uuid.uuid4().hex[:12]}"
    admin = create_engine(server_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield make_url(server_url).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def truncate_all(database_url: str, keep: tuple[str, ...] = ()) -> None:
    """Empties every table of a PostgreSQL database (but those in `keep`), restarting its id
    sequences."""
    tables = ", ".join(f'"{t.name}"' for t in Base.metadata.sorted_tables if t.name not in keep)
    engine = create_engine(database_url)
    with engine.begin() as connection:
        connection.execute(text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))
    engine.dispose()


def table_names(database_url: str) -> set[str]:
    """The tables that exist in a database (alembic_version included)."""
    engine = create_engine(database_url)
    try:
        return set(inspect(engine).get_table_names())
    finally:
        engine.dispose()


def app_session(client: Any) -> AbstractContextManager[Session]:
    """A session on a TestClient app's own database: for test setup and inspection, once the
    app's event relay is idle (so its commits neither race the test's writes nor change what
    the test inspects)."""
    wait_for_relay_idle(client)
    return client.app.state.database.session()


def redis_reachable(server_url: str = REDIS_SERVER_URL) -> bool:
    client = redis.Redis.from_url(server_url, socket_timeout=3)
    try:
        return bool(client.ping())
    except redis.RedisError:
        return False
    finally:
        client.close()


@contextmanager
def fresh_redis_database(server_url: str = REDIS_SERVER_URL) -> Iterator[str]:
    """A random database index (1..15) of that Redis, flushed before and after; yields its URL.
    Fails the test when that Redis does not answer: the suite requires it."""
    if not redis_reachable(server_url):
        pytest.fail(f"Redis is required at {server_url} (scripts/ensure-services.sh starts it)")
    url = f"{server_url.rstrip('/')}/{random.randint(1, 15)}"
    client = redis.Redis.from_url(url, socket_timeout=3)
    client.flushdb()
    try:
        yield url
    finally:
        client.flushdb()
        client.close()


@contextmanager
def statements_run(client: Any, keep: Callable[[str], bool]) -> Iterator[list[str]]:
    """The SQL statements a TestClient app's engine runs inside the block that `keep` accepts."""
    statements: list[str] = []

    def record(_conn, _cursor, statement, _params, _context, _many) -> None:  # type: ignore[no-untyped-def]
        if keep(statement):
            statements.append(statement)

    engine = client.app.state.database.engine
    event.listen(engine, "before_cursor_execute", record)
    try:
        yield statements
    finally:
        event.remove(engine, "before_cursor_execute", record)
