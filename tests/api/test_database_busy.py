"""A SQLite write from a stale read snapshot fails at once, whatever the busy timeout: the
caller gets a retryable 503, never a 500."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from fastapi import Request
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from api.app import create_app
from api.models import User


def _user(name: str) -> User:
    return User(username=name, email=f"{name}@example.com", name=name, password_hash="x")


def test_a_write_from_a_stale_sqlite_snapshot_is_a_retryable_503(
    make_settings: Callable[..., Any], database_url: str
) -> None:
    if not database_url.startswith("sqlite"):
        pytest.skip("PostgreSQL waits for the row lock instead")
    app = create_app(make_settings())

    @app.post("/test/stale-write")
    def stale_write(request: Request) -> None:
        database = request.app.state.database
        with database.session() as reader, database.session() as writer:
            reader.scalar(select(func.count(User.id)))  # opens a read snapshot
            writer.add(_user("first"))
            writer.commit()  # another request commits meanwhile
            reader.add(_user("second"))
            reader.commit()  # cannot write from the old snapshot

    with TestClient(app) as client:
        response = client.post("/test/stale-write")
        assert response.status_code == 503
        assert response.headers["Retry-After"] == "1"
        assert response.json() == {"detail": "The database is busy; try again in a moment"}
        assert "X-Request-ID" in response.headers
