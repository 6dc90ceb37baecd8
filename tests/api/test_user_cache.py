"""The Redis cache (CACHE_URL) of authenticated lookups and of the admin user list: hits skip
the database, and every change that takes a right away is refused on the very next request by
every worker (two apps on one database and one Redis), or not made at all while Redis is away."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from datetime import timedelta
from typing import Any

import pytest
import redis
from fastapi.testclient import TestClient

from api.models import User, utcnow
from tests.support.accounts import (
    ADMIN_USERNAME,
    DEFAULT_PASSWORD,
    admin_settings,
    bearer,
    login,
    login_headers,
    register,
)
from tests.support.databases import fresh_redis_database, statements_run
from tests.support.servers import free_port

ClientFactory = Callable[..., AbstractContextManager[TestClient]]


@pytest.fixture
def cache_url() -> Iterator[str]:
    with fresh_redis_database() as url:
        yield url


@pytest.fixture
def workers(make_client: ClientFactory, cache_url: str) -> Iterator[tuple[TestClient, TestClient]]:
    """Two API processes' worth of app on one database and one cache; the first made the
    admin at start-up."""
    with (
        make_client(cache_url=cache_url, **admin_settings()) as first,
        make_client(cache_url=cache_url) as second,
    ):
        yield first, second


def user_queries(client: TestClient) -> AbstractContextManager[list[str]]:
    """The statements on users or sessions the app runs inside the block."""
    return statements_run(
        client, lambda statement: " users" in statement or "auth_sessions" in statement
    )


def test_an_authenticated_request_is_answered_from_the_cache(
    workers: tuple[TestClient, TestClient], cache_url: str
) -> None:
    first, second = workers
    alice = register(first, "alice")
    assert second.get("/auth/me", headers=alice["headers"]).status_code == 200  # cached now
    with user_queries(second) as queries:
        me = second.get("/auth/me", headers=alice["headers"])
    assert me.status_code == 200 and me.json() == alice["user"] | {
        "last_login_at": me.json()["last_login_at"]
    }
    assert queries == []
    stored = redis.Redis.from_url(cache_url)
    values = b" ".join(
        value
        for key in stored.scan_iter("pixelgate:cache:*")
        if stored.type(key) == b"hash"
        for value in stored.hvals(key)
    )
    assert b'"username": "alice"' in values
    assert b"password" not in values and b"$2b$" not in values  # no hash, ever


def test_a_profile_change_is_seen_at_once_by_every_worker(
    workers: tuple[TestClient, TestClient],
) -> None:
    first, second = workers
    alice = register(first, "alice")
    assert second.get("/auth/me", headers=alice["headers"]).json()["name"] == "Alice"
    assert first.patch("/auth/me", json={"name": "Alice B"}, headers=alice["headers"]).is_success
    assert second.get("/auth/me", headers=alice["headers"]).json()["name"] == "Alice B"
    # A route may change the cached user and commit: the change is stored.
    assert second.patch("/auth/me", json={"name": "Alice C"}, headers=alice["headers"]).is_success
    assert first.get("/auth/me", headers=alice["headers"]).json()["name"] == "Alice C"


def _logout(client: TestClient, account: dict[str, Any], admin: dict[str, str]) -> None:
    refresh = {"refresh_token": account["tokens"]["refresh_token"]}
    assert client.post("/auth/logout", json=refresh).status_code == 204


def _logout_all(client: TestClient, account: dict[str, Any], admin: dict[str, str]) -> None:
    assert client.post("/auth/logout-all", headers=account["headers"]).status_code == 204


def _password_changed_elsewhere(
    client: TestClient, account: dict[str, Any], admin: dict[str, str]
) -> None:
    other = login_headers(client, account["user"]["username"])
    body = {"current_password": DEFAULT_PASSWORD, "new_password": "N3w!passw0rd"}
    assert client.post("/auth/change-password", json=body, headers=other).status_code == 204


def _refresh_token_reused(
    client: TestClient, account: dict[str, Any], admin: dict[str, str]
) -> None:
    refresh = {"refresh_token": account["tokens"]["refresh_token"]}
    assert client.post("/auth/refresh", json=refresh).status_code == 200
    assert client.post("/auth/refresh", json=refresh).status_code == 401  # reuse: all revoked


def _session_revoked(client: TestClient, account: dict[str, Any], admin: dict[str, str]) -> None:
    other = login_headers(client, account["user"]["username"])
    sessions = client.get("/auth/sessions", headers=other).json()
    (target,) = [session for session in sessions if not session["current"]]
    assert client.delete(f"/auth/sessions/{target['id']}", headers=other).status_code == 204


def _deactivated(client: TestClient, account: dict[str, Any], admin: dict[str, str]) -> None:
    user_id = account["user"]["id"]
    change = client.patch(f"/users/{user_id}", json={"is_active": False}, headers=admin)
    assert change.status_code == 200


def _deleted(client: TestClient, account: dict[str, Any], admin: dict[str, str]) -> None:
    assert client.delete(f"/users/{account['user']['id']}", headers=admin).status_code == 204


@pytest.mark.parametrize(
    "revoke",
    [
        _logout,
        _logout_all,
        _password_changed_elsewhere,
        _refresh_token_reused,
        _session_revoked,
        _deactivated,
        _deleted,
    ],
)
def test_a_revoked_access_is_refused_on_the_next_request_by_every_worker(
    workers: tuple[TestClient, TestClient], revoke: Callable[..., None]
) -> None:
    first, second = workers
    admin = login_headers(first, ADMIN_USERNAME)
    alice = register(first, "alice")
    for worker in workers:
        assert worker.get("/auth/me", headers=alice["headers"]).status_code == 200  # cached

    revoke(first, alice, admin)

    for worker in (second, first):
        refused = worker.get("/auth/me", headers=alice["headers"])
        assert refused.status_code == 401, (revoke.__name__, refused.text)


def test_a_role_change_is_seen_at_once_by_every_worker(
    workers: tuple[TestClient, TestClient],
) -> None:
    first, second = workers
    admin = login_headers(first, ADMIN_USERNAME)
    alice = register(first, "alice")
    promote = {"role": "admin"}
    assert first.patch(f"/users/{alice['user']['id']}", json=promote, headers=admin).is_success
    assert second.get("/users", headers=alice["headers"]).status_code == 200  # now cached admin
    demote = {"role": "member"}
    assert first.patch(f"/users/{alice['user']['id']}", json=demote, headers=admin).is_success
    assert second.get("/users", headers=alice["headers"]).status_code == 403
    assert second.get("/auth/me", headers=alice["headers"]).json()["role"] == "member"


def test_the_admin_list_is_cached_and_follows_every_change(
    workers: tuple[TestClient, TestClient],
) -> None:
    first, second = workers
    admin = login_headers(first, ADMIN_USERNAME)

    def usernames(client: TestClient) -> list[str]:
        response = client.get("/users", headers=admin)
        assert response.status_code == 200, response.text
        return [user["username"] for user in response.json()["items"]]

    assert usernames(second) == [ADMIN_USERNAME]
    with user_queries(second) as queries:
        assert usernames(second) == [ADMIN_USERNAME]
    assert queries == []  # the admin's lookup and the page, both from the cache

    alice = register(first, "alice")
    assert usernames(second) == ["alice", ADMIN_USERNAME]
    login(first, "alice")  # last_login_at is on the page too
    logged_in = second.get("/users", headers=admin).json()["items"][0]
    assert logged_in["last_login_at"] is not None
    first.patch(f"/users/{alice['user']['id']}", json={"is_active": False}, headers=admin)
    assert second.get("/users", params={"is_active": False}, headers=admin).json()["total"] == 1


def test_with_redis_unreachable_requests_use_the_database_and_revoking_changes_wait(
    make_client: ClientFactory,
) -> None:
    with make_client(cache_url=f"redis://127.0.0.1:{free_port()}/0") as client:
        alice = register(client, "alice")  # a login: its cosmetic invalidation may fail
        assert client.get("/auth/me", headers=alice["headers"]).status_code == 200

        refused = client.post("/auth/logout-all", headers=alice["headers"])
        assert refused.status_code == 503 and "Retry-After" in refused.headers
        # Nothing was revoked: the change was refused, not half made.
        assert client.get("/auth/me", headers=alice["headers"]).status_code == 200
        sessions = client.get("/auth/sessions", headers=alice["headers"]).json()
        assert len(sessions) == 1
        assert client.get("/auth/me", headers=bearer("not-a-token")).status_code == 401


def test_a_lookup_that_started_before_an_invalidation_cannot_store_its_old_answer(
    workers: tuple[TestClient, TestClient],
) -> None:
    """A request reads the cache (a miss) and then the database; meanwhile another revokes the
    session and invalidates. The first request's answer, read before the revocation, must not
    land in the cache afterwards."""
    first, _ = workers
    alice = register(first, "alice")
    cache = first.app.state.user_cache
    claims = first.app.state.token_codec.decode(alice["tokens"]["access_token"])
    with first.app.state.database.session() as db:
        miss = cache.session_user(db, claims.session_id, claims.user_id)
        assert miss.user is None and miss.stamp is not None
        user_before = db.get(User, claims.user_id)
        assert first.post("/auth/logout-all", headers=alice["headers"]).status_code == 204
        later = utcnow() + timedelta(days=1)
        cache.remember_session_user(miss.stamp, claims.session_id, user_before, later)
        assert cache.session_user(db, claims.session_id, claims.user_id).user is None
    assert first.get("/auth/me", headers=alice["headers"]).status_code == 401
