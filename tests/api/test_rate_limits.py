"""Per-IP rate limits (slowapi/limits), their storage, and which address counts as the client."""

from __future__ import annotations

import random
import shutil
import sys
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from fastapi.testclient import TestClient
from sqlalchemy import select

from api.app import create_app
from api.models import LoginEvent
from tests.support.accounts import DEFAULT_PASSWORD, login, register, signup
from tests.support.databases import (
    app_session,
    fresh_redis_database,
)
from tests.support.paths import REPO_ROOT
from tests.support.servers import LiveClient, api_env, free_port, running_process


def _assert_limited(response: Any, window_s: int = 60) -> None:
    assert response.status_code == 429, response.text
    assert 1 <= int(response.headers["Retry-After"]) <= window_s
    assert "Too many" in response.json()["detail"]
    assert "X-Request-ID" in response.headers


def _last_event_reason(client: TestClient) -> tuple[str | None, str | None]:
    with app_session(client) as db:
        event = db.scalars(select(LoginEvent).order_by(LoginEvent.id.desc())).first()
        return event.failure_reason, event.ip_address


@pytest.fixture
def peer_app(make_settings: Callable[..., Any]) -> Callable[..., TestClient]:
    """`peer_app(ip, **settings)`: a started TestClient whose requests come from `ip`."""
    clients: list[TestClient] = []

    def factory(ip: str, **overrides: Any) -> TestClient:
        overrides.setdefault("rate_limit_enabled", True)
        client = TestClient(create_app(make_settings(**overrides)), client=(ip, 40000))
        client.__enter__()
        clients.append(client)
        return client

    yield factory
    for client in clients:
        client.__exit__(None, None, None)


def test_login_is_limited_to_5_per_minute_per_ip(make_client) -> None:
    with make_client(rate_limit_enabled=True) as client:
        assert signup(client, "rate_001").status_code == 201
        for _ in range(3):
            assert login(client, "rate_001", "Wrong!pass1").status_code == 401
        assert login(client, "rate_001").status_code == 200
        form = {"username": "rate_001", "password": DEFAULT_PASSWORD}
        assert client.post("/auth/token", data=form).status_code == 200
        # The sixth attempt is refused before the password is even looked at.
        _assert_limited(login(client, "rate_001"))
        assert _last_event_reason(client) == ("rate_limited", "testclient")
        _assert_limited(client.post("/auth/token", data=form))
        _assert_limited(login(client, "someone_else"))
        assert _last_event_reason(client) == ("rate_limited", "testclient")


def test_signup_is_limited_to_10_per_minute_per_ip(make_client) -> None:
    with make_client(rate_limit_enabled=True) as client:
        for n in range(10):
            assert signup(client, f"rate_s{n:02d}").status_code == 201
        _assert_limited(signup(client, "rate_s10"))
        assert login(client, "rate_s00").status_code == 200


def test_refresh_is_limited_to_30_per_minute_per_ip(make_client) -> None:
    with make_client(rate_limit_enabled=True) as client:
        tokens = register(client, "rate_002")["tokens"]
        client.cookies.clear()
        for _ in range(29):
            refused = client.post("/auth/refresh", json={"refresh_token": "unknown"})
            assert refused.status_code == 401
        good = client.post("/auth/refresh", json={"refresh_token": tokens["refresh_token"]})
        assert good.status_code == 200
        _assert_limited(
            client.post("/auth/refresh", json={"refresh_token": good.json()["refresh_token"]})
        )


def test_limits_are_configurable(make_client) -> None:
    with make_client(
        rate_limit_enabled=True,
        login_rate_limit="2/minute",
        signup_rate_limit="1/hour",
        refresh_rate_limit="1/second",
    ) as client:
        assert signup(client, "rate_003").status_code == 201
        _assert_limited(signup(client, "rate_004"), window_s=3600)
        assert login(client, "rate_003").status_code == 200
        assert login(client, "rate_003").status_code == 200
        _assert_limited(login(client, "rate_003"))
        client.post("/auth/refresh", json={"refresh_token": "unknown"})
        _assert_limited(client.post("/auth/refresh", json={"refresh_token": "x"}), window_s=1)


def test_limits_are_off_when_disabled(make_client) -> None:
    with make_client(rate_limit_enabled=False, login_rate_limit="1/minute") as client:
        assert signup(client, "rate_005").status_code == 201
        for _ in range(8):
            assert login(client, "rate_005").status_code == 200


def test_each_ip_has_its_own_budget(peer_app: Callable[..., TestClient]) -> None:
    first = peer_app("192.0.2.1", login_rate_limit="1/minute")
    assert signup(first, "rate_006").status_code == 201
    assert login(first, "rate_006").status_code == 200
    _assert_limited(login(first, "rate_006"))
    assert _last_event_reason(first) == ("rate_limited", "192.0.2.1")
    # Same app, another peer: fresh budget.
    second = TestClient(first.app, client=("192.0.2.2", 40000))
    assert login(second, "rate_006").status_code == 200


def _history_ips(client: TestClient, headers: dict[str, str]) -> list[str]:
    items = client.get("/auth/login-history", headers=headers).json()["items"]
    return [item["ip_address"] for item in items]


FORWARDED_CASES = [  # (FORWARDED_ALLOW_IPS, X-Forwarded-For, client address recorded)
    (("10.0.0.0/8",), "203.0.113.9", "203.0.113.9"),
    (("10.0.0.5",), "198.51.100.1, 203.0.113.9", "203.0.113.9"),
    (("10.0.0.0/8",), "198.51.100.1, 203.0.113.9, 10.0.0.7", "203.0.113.9"),
    (("10.0.0.0/8",), "10.0.0.8, 10.0.0.7", "10.0.0.8"),
    (("*",), "203.0.113.9", "203.0.113.9"),
    (("10.0.0.0/8",), "not-an-ip", "10.0.0.5"),
    (("10.0.0.0/8",), "fe80::1%" + "a" * 80, "10.0.0.5"),
    (("10.0.0.0/8",), "2001:db8:0::1", "2001:db8::1"),
    ((), "203.0.113.9", "10.0.0.5"),
    (("192.0.2.0/24",), "203.0.113.9", "10.0.0.5"),
]


def test_forwarded_for_is_believed_only_from_trusted_proxies(
    peer_app: Callable[..., TestClient],
) -> None:
    """The peer is 10.0.0.5 throughout; which address counts depends on whom it trusts."""
    apps: dict[tuple[str, ...], TestClient] = {}
    for n, (trusted, forwarded, seen) in enumerate(FORWARDED_CASES):
        if trusted not in apps:
            apps[trusted] = peer_app(
                "10.0.0.5", forwarded_allow_ips=list(trusted), rate_limit_enabled=False
            )
        client = apps[trusted]
        account = register(client, f"xff_{n:04d}")
        response = client.post(
            "/auth/login",
            json={"username": f"xff_{n:04d}", "password": DEFAULT_PASSWORD},
            headers={"X-Forwarded-For": forwarded},
        )
        assert response.status_code == 200, (forwarded, response.text)
        assert _history_ips(client, account["headers"])[0] == seen, (trusted, forwarded)


def test_rate_limit_follows_the_forwarded_client(peer_app: Callable[..., TestClient]) -> None:
    client = peer_app("10.0.0.5", forwarded_allow_ips=["10.0.0.0/8"], login_rate_limit="1/minute")
    assert signup(client, "rate_008").status_code == 201

    def attempt(forwarded: str) -> Any:
        return client.post(
            "/auth/login",
            json={"username": "rate_008", "password": DEFAULT_PASSWORD},
            headers={"X-Forwarded-For": forwarded},
        )

    assert attempt("203.0.113.1").status_code == 200
    _assert_limited(attempt("203.0.113.1"))
    assert attempt("203.0.113.2").status_code == 200


def test_untrusted_peers_cannot_dodge_the_limit_with_forwarded_for(
    peer_app: Callable[..., TestClient],
) -> None:
    client = peer_app("192.0.2.50", login_rate_limit="1/minute")
    assert signup(client, "rate_009").status_code == 201
    for n, expected in ((1, 200), (2, 429), (3, 429)):
        response = client.post(
            "/auth/login",
            json={"username": "rate_009", "password": DEFAULT_PASSWORD},
            headers={"X-Forwarded-For": f"203.0.113.{n}"},
        )
        assert response.status_code == expected


@pytest.mark.parametrize(("allowed", "seen"), [(None, "127.0.0.1"), ("127.0.0.1", "203.0.113.5")])
def test_start_script_believes_forwarded_for_only_from_allowed_peers(
    sqlite_template: Path, tmp_path: Path, allowed: str | None, seen: str
) -> None:
    """Through the real start-up path: uvicorn's own proxy handling (which trusts 127.0.0.1
    by default) must not believe more than FORWARDED_ALLOW_IPS says."""
    database = tmp_path / "app.db"
    shutil.copyfile(sqlite_template, database)
    port = free_port()
    env = api_env(
        f"sqlite:///{database}", tmp_path / "images", API_PORT=str(port), PYTHON=sys.executable
    )
    env.pop("FORWARDED_ALLOW_IPS", None)
    if allowed is not None:
        env["FORWARDED_ALLOW_IPS"] = allowed
    base_url = f"http://127.0.0.1:{port}"
    start = ["bash", str(REPO_ROOT / "scripts" / "start.sh")]
    with running_process(start, env, f"{base_url}/health", tmp_path / "server.log"):
        client = LiveClient(base_url)
        account = register(client, "rate_010")
        response = client.post(
            "/auth/login",
            json={"username": "rate_010", "password": DEFAULT_PASSWORD},
            headers={"X-Forwarded-For": "203.0.113.5"},
        )
        assert response.status_code == 200
        assert _history_ips(client, account["headers"])[0] == seen


@pytest.fixture
def redis_uri() -> Iterator[str]:
    with fresh_redis_database() as url:
        yield url


def test_redis_storage_shares_limits_between_apps(
    peer_app: Callable[..., TestClient], redis_uri: str
) -> None:
    # A peer address of its own, so a concurrent run on the same Redis database cannot interfere.
    ip = f"10.{random.randint(0, 255)}.{random.randint(0, 255)}.{random.randint(1, 254)}"
    one = peer_app(ip, rate_limit_storage_uri=redis_uri, login_rate_limit="3/minute")
    other = peer_app(ip, rate_limit_storage_uri=redis_uri, login_rate_limit="3/minute")
    name = f"r{uuid.uuid4().hex[:8]}"
    assert signup(one, name).status_code == 201
    assert login(one, name).status_code == 200
    assert login(other, name).status_code == 200
    assert login(one, name).status_code == 200
    _assert_limited(login(other, name))
    keys = redis.Redis.from_url(redis_uri).keys("*")
    # Namespaced, so a Redis shared with other applications keeps the counters apart.
    assert any(b"pixelgate/login/" + ip.encode() in key for key in keys), keys
