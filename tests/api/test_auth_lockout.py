"""Lockout after MAX_LOGIN_ATTEMPTS consecutive failures, for real and unknown usernames alike."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import func, select

from api.models import LoginEvent
from tests.support.accounts import DEFAULT_PASSWORD, AccountFactory, login
from tests.support.databases import app_session

WRONG = "Wrong!pass1"


def _fail(client: TestClient, username: str, times: int) -> None:
    for _ in range(times):
        assert login(client, username, WRONG).status_code == 401


def _assert_locked(response: Any, minutes: int = 15) -> str:
    assert response.status_code == 429, response.text
    retry_after = int(response.headers["Retry-After"])
    assert 0 < retry_after <= minutes * 60
    assert "set-cookie" not in response.headers
    detail = response.json()["detail"]
    assert "Too many failed logins" in detail
    return re.sub(r"\d+", "N", detail)


def _age_login_events(client: TestClient, by: timedelta) -> None:
    """Moves every recorded attempt into the past (the lockout window cannot be shortened)."""
    with app_session(client) as db:
        for event in db.scalars(select(LoginEvent)):
            event.created_at -= by
        db.commit()


def _reasons(client: TestClient, username: str) -> list[str | None]:
    with app_session(client) as db:
        return list(
            db.scalars(
                select(LoginEvent.failure_reason)
                .where(func.lower(LoginEvent.username_attempted) == username.lower())
                .order_by(LoginEvent.id)
            )
        )


def test_real_user_is_locked_even_with_the_right_password(
    client: TestClient, accounts: AccountFactory
) -> None:
    accounts.create("lock_001")
    accounts.create("lock_002")
    _fail(client, "lock_001", 5)
    _assert_locked(login(client, "lock_001"))
    # The account is locked, whatever name it is reached by and on either login route.
    _assert_locked(login(client, "LOCK_001@example.com"))
    form = {"username": "lock_001", "password": DEFAULT_PASSWORD}
    _assert_locked(client.post("/auth/token", data=form))
    assert _reasons(client, "lock_001") == ["bad_credentials"] * 5 + ["locked", "locked"]
    assert _reasons(client, "lock_001@example.com") == ["locked"]
    # Other accounts are not affected.
    assert login(client, "lock_002").status_code == 200


def test_unknown_username_locks_exactly_like_a_real_one(
    client: TestClient, accounts: AccountFactory
) -> None:
    accounts.create("lock_003")
    _fail(client, "lock_003", 5)
    _fail(client, "ghost_03", 5)
    real = _assert_locked(login(client, "lock_003"))
    unknown = _assert_locked(login(client, "ghost_03"))
    assert real == unknown
    assert _reasons(client, "ghost_03") == ["bad_credentials"] * 5 + ["locked"]


def test_spelling_variants_of_a_locked_name_are_locked_too(
    client: TestClient, accounts: AccountFactory
) -> None:
    """Otherwise " ghost" answering 401 where " real" answers 429 would reveal accounts."""
    accounts.create("lock_007")
    _fail(client, "lock_007", 5)
    _fail(client, "ghost_07", 5)
    for variant in (" lock_007", "LOCK_007 ", "\tghost_07", "Ghost_07  "):
        _assert_locked(login(client, variant))


def test_a_success_resets_the_count(client: TestClient, accounts: AccountFactory) -> None:
    accounts.create("lock_004")
    _fail(client, "lock_004", 4)
    assert login(client, "lock_004").status_code == 200
    _fail(client, "lock_004", 4)
    assert login(client, "lock_004").status_code == 200


def test_lock_lifts_when_the_window_passes(client: TestClient, accounts: AccountFactory) -> None:
    accounts.create("lock_005")
    _fail(client, "lock_005", 5)
    _fail(client, "ghost_05", 5)
    _assert_locked(login(client, "lock_005"))
    _age_login_events(client, timedelta(minutes=14, seconds=50))
    nearly = login(client, "lock_005")
    _assert_locked(nearly)
    assert int(nearly.headers["Retry-After"]) <= 10
    _age_login_events(client, timedelta(seconds=15))
    assert login(client, "lock_005").status_code == 200
    assert login(client, "ghost_05").status_code == 401


def test_attempts_and_window_are_configurable(make_client, accounts: AccountFactory) -> None:
    with make_client(max_login_attempts=2, lockout_minutes=2) as client:
        accounts.create("lock_006")
        _fail(client, "lock_006", 2)
        _assert_locked(login(client, "lock_006"), minutes=2)
