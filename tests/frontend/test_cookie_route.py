"""The remember-me cookie route of the dashboard's own server, and its one-time tickets."""

from __future__ import annotations

import pytest
from starlette.applications import Starlette
from starlette.testclient import TestClient

from frontend.auth import cookie
from frontend.auth.cookie import HANDOFFS, ROUTE_PATH, HandoffStore, TicketState
from frontend.config import REFRESH_COOKIE_NAME


@pytest.fixture
def route() -> TestClient:
    return TestClient(Starlette(routes=cookie.routes()))


def set_cookie_header(response) -> str:
    return response.headers["set-cookie"].lower()


def test_a_ticket_sets_an_httponly_strict_cookie_once(route: TestClient) -> None:
    ticket = HANDOFFS.issue("the-refresh-token", 2_592_000)
    first = route.get(ROUTE_PATH, params={"ticket": ticket})
    assert first.status_code == 200
    assert first.headers["content-type"] == "image/gif"
    assert first.headers["cache-control"] == "no-store"
    header = set_cookie_header(first)
    assert header.startswith(f"{REFRESH_COOKIE_NAME}=the-refresh-token;")
    assert "httponly" in header
    assert "samesite=strict" in header
    assert "path=/;" in header or header.endswith("path=/")
    assert "max-age=2592000" in header
    assert "secure" not in header
    assert HANDOFFS.state(ticket) is TicketState.REDEEMED

    again = route.get(ROUTE_PATH, params={"ticket": ticket})
    assert again.status_code == 404
    assert "set-cookie" not in again.headers


def test_a_clearing_ticket_expires_the_cookie(route: TestClient) -> None:
    ticket = HANDOFFS.issue(None, None)
    response = route.get(ROUTE_PATH, params={"ticket": ticket})
    header = set_cookie_header(response)
    assert header.startswith(f'{REFRESH_COOKIE_NAME}="";') or "max-age=0" in header
    assert "httponly" in header


def test_unknown_or_missing_tickets_set_nothing(route: TestClient) -> None:
    for params in ({"ticket": "made-up"}, {}):
        response = route.get(ROUTE_PATH, params=params)
        assert response.status_code == 404
        assert "set-cookie" not in response.headers


def test_the_cookie_is_secure_behind_https(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COOKIE_SECURE", "true")
    client = TestClient(Starlette(routes=cookie.routes()))
    response = client.get(ROUTE_PATH, params={"ticket": HANDOFFS.issue("token", 60)})
    assert "secure" in set_cookie_header(response)


def test_a_newer_ticket_cancels_the_older_one() -> None:
    """So a late request can never put back a token that was rotated since."""
    store = HandoffStore()
    old = store.issue("first", 60)
    new = store.issue("second", 60, replaces=old)
    assert store.redeem(old) is None
    handoff = store.redeem(new)
    assert handoff is not None
    assert handoff.refresh_token == "second"


def test_tickets_expire() -> None:
    now = [1000.0]
    store = HandoffStore(ttl_s=300, clock=lambda: now[0])
    ticket = store.issue("token", 60)
    assert store.state(ticket) is TicketState.PENDING
    now[0] += 301
    assert store.state(ticket) is TicketState.GONE
    assert store.redeem(ticket) is None


def test_tickets_are_long_random_and_not_the_token() -> None:
    store = HandoffStore()
    tickets = {store.issue("token", 60) for _ in range(50)}
    assert len(tickets) == 50
    assert all(len(ticket) >= 40 and "token" not in ticket for ticket in tickets)
