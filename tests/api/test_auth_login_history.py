"""Login history: a row for every attempt, and GET /auth/login-history for the caller."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import datetime
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from api.app import create_app
from api.models import LoginEvent
from tests.support.accounts import DEFAULT_PASSWORD, AccountFactory, bearer, login
from tests.support.databases import app_session

PEER_IP = "198.51.100.7"
AGENT = "HistoryTest/2.0"


@pytest.fixture
def peer_client(make_settings: Callable[..., Any]) -> Iterator[TestClient]:
    """A client calling from a real IP address (TestClient's default peer is "testclient")."""
    app = create_app(make_settings(rate_limit_enabled=True, login_rate_limit="12/minute"))
    with TestClient(app, client=(PEER_IP, 40000), headers={"User-Agent": AGENT}) as client:
        yield client


def _rows(client: TestClient) -> list[tuple[str, int | None, bool, str | None]]:
    with app_session(client) as db:
        events = db.scalars(select(LoginEvent).order_by(LoginEvent.id)).all()
        for event in events:
            assert (event.ip_address, event.user_agent) == (PEER_IP, AGENT)
            assert event.created_at.tzinfo is not None
        return [(e.username_attempted, e.user_id, e.success, e.failure_reason) for e in events]


def test_every_kind_of_attempt_is_recorded_with_ip_and_user_agent(
    peer_client: TestClient, accounts: AccountFactory
) -> None:
    client = peer_client
    member = accounts.create("hist_001").id
    sleeper = accounts.create("hist_002", is_active=False).id

    assert login(client, "hist_001").status_code == 200
    assert login(client, "HIST_001@example.com").status_code == 200
    assert (
        client.post(
            "/auth/token", data={"username": "hist_001", "password": DEFAULT_PASSWORD}
        ).status_code
        == 200
    )
    assert login(client, "hist_001", "Wrong!pass1").status_code == 401
    assert login(client, "no_such_user", "Wrong!pass1").status_code == 401
    assert login(client, "hist_002").status_code == 403
    for _ in range(5):
        assert login(client, "ghost_01", "Wrong!pass1").status_code == 401
    assert login(client, "ghost_01").status_code == 429  # locked
    assert login(client, "hist_001").status_code == 429  # 13th request: rate limited

    assert _rows(client) == [
        ("hist_001", member, True, None),
        ("HIST_001@example.com", member, True, None),
        ("hist_001", member, True, None),
        ("hist_001", member, False, "bad_credentials"),
        ("no_such_user", None, False, "bad_credentials"),
        ("hist_002", sleeper, False, "inactive"),
        *[("ghost_01", None, False, "bad_credentials")] * 5,
        ("ghost_01", None, False, "locked"),
        ("hist_001", member, False, "rate_limited"),
    ]


def _history(client: TestClient, headers: dict[str, str], query: str = "") -> Any:
    return client.get(f"/auth/login-history{query}", headers=headers)


def test_history_lists_the_callers_attempts_newest_first(
    client: TestClient, accounts: AccountFactory
) -> None:
    account = accounts.logged_in(client, "hist_003")
    accounts.logged_in(client, "hist_004")
    assert login(client, "hist_003", "Wrong!pass1").status_code == 401
    assert login(client, "hist_004", "Wrong!pass1").status_code == 401
    assert login(client, "hist_003@example.com").status_code == 200

    response = _history(client, account.headers)
    assert response.status_code == 200
    page = response.json()
    assert (page["total"], page["limit"], page["offset"]) == (3, 20, 0)
    items = page["items"]
    assert [(i["username_attempted"], i["success"], i["failure_reason"]) for i in items] == [
        ("hist_003@example.com", True, None),
        ("hist_003", False, "bad_credentials"),
        ("hist_003", True, None),
    ]
    assert set(items[0]) == {
        "id",
        "username_attempted",
        "success",
        "failure_reason",
        "ip_address",
        "user_agent",
        "created_at",
    }
    assert items[0]["ip_address"] == "testclient"
    assert items[0]["user_agent"] == "testclient"
    created = [datetime.fromisoformat(i["created_at"]) for i in items]
    assert created == sorted(created, reverse=True)
    assert all(c.tzinfo is not None for c in created)


def test_history_filters_by_success_and_paginates(
    client: TestClient, accounts: AccountFactory
) -> None:
    account = accounts.logged_in(client, "hist_005")
    for _ in range(3):
        assert login(client, "hist_005", "Wrong!pass1").status_code == 401
    assert login(client, "hist_005").status_code == 200
    headers = account.headers

    failures = _history(client, headers, "?success=false").json()
    assert failures["total"] == 3
    assert {i["failure_reason"] for i in failures["items"]} == {"bad_credentials"}
    successes = _history(client, headers, "?success=true").json()
    assert successes["total"] == 2
    assert all(i["success"] for i in successes["items"])

    everything = _history(client, headers).json()["items"]
    first = _history(client, headers, "?limit=2").json()
    second = _history(client, headers, "?limit=2&offset=2").json()
    beyond = _history(client, headers, "?limit=2&offset=10").json()
    assert (first["total"], first["limit"], first["offset"]) == (5, 2, 0)
    assert [i["id"] for i in first["items"] + second["items"]] == [i["id"] for i in everything[:4]]
    assert (second["limit"], second["offset"]) == (2, 2)
    assert beyond["items"] == [] and beyond["total"] == 5
    assert _history(client, headers, "?limit=100").status_code == 200


def test_history_validates_its_query(client: TestClient, accounts: AccountFactory) -> None:
    account = accounts.logged_in(client, "hist_006")
    for query in (
        "?limit=0",
        "?limit=101",
        "?limit=-1",
        "?offset=-1",
        "?limit=x",
        "?success=maybe",
    ):
        response = _history(client, account.headers, query)
        assert response.status_code == 422, query
        assert response.json()["detail"][0]["loc"][0] == "query"


def test_history_needs_a_token(client: TestClient) -> None:
    response = _history(client, bearer("not-a-token"))
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"] == "Bearer"
