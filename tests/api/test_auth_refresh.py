"""POST /auth/refresh: rotation, body or cookie, reuse detection, expiry, concurrency."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from fastapi.testclient import TestClient
from jose import jwt
from sqlalchemy import select, update

from api.models import AuditEntry, AuthSession, RefreshToken, User, utcnow
from tests.support.accounts import AccountFactory, bearer, login, refresh_cookie
from tests.support.databases import app_session

INVALID_REFRESH = {"detail": "Invalid, expired or revoked refresh token"}


def _refresh(client: Any, token: str | None = None) -> Any:
    if token is None:
        return client.post("/auth/refresh")
    return client.post("/auth/refresh", json={"refresh_token": token})


def _session_id(access_token: str) -> int:
    return jwt.get_unverified_claims(access_token)["sid"]


def _assert_refused(response: Any) -> None:
    assert response.status_code == 401, response.text
    assert response.json() == INVALID_REFRESH
    assert response.headers["WWW-Authenticate"] == "Bearer"


def test_refresh_rotates_the_token_within_the_same_session(
    client: TestClient, accounts: AccountFactory
) -> None:
    first = accounts.logged_in(client, "fresh_01").tokens
    second = _refresh(client, first["refresh_token"])
    assert second.status_code == 200, second.text
    rotated = second.json()
    assert rotated["token_type"] == "bearer"
    assert rotated["refresh_token"] != first["refresh_token"]
    assert rotated["access_token"] != first["access_token"]
    assert _session_id(rotated["access_token"]) == _session_id(first["access_token"])
    assert refresh_cookie(second).startswith(f"refresh_token={rotated['refresh_token']};")
    third = _refresh(client, rotated["refresh_token"])
    assert third.status_code == 200
    assert third.json()["refresh_token"] not in (first["refresh_token"], rotated["refresh_token"])
    assert client.get("/auth/me", headers=bearer(third.json()["access_token"])).status_code == 200
    with app_session(client) as db:
        tokens = db.scalars(select(RefreshToken)).all()
        assert len(tokens) == 3
        assert sum(token.used_at is None for token in tokens) == 1
        # Only digests are stored.
        stored = {token.token_hash for token in tokens}
        assert first["refresh_token"] not in stored and len(stored) == 3


def test_refresh_from_the_cookie_rotates_the_cookie(
    client: TestClient, accounts: AccountFactory
) -> None:
    accounts.create("fresh_02")
    first = login(client, "fresh_02", remember_me=True).json()
    assert client.cookies.get("refresh_token") == first["refresh_token"]
    response = _refresh(client)
    assert response.status_code == 200, response.text
    rotated = response.json()["refresh_token"]
    assert client.cookies.get("refresh_token") == rotated
    # A remember-me session keeps its persistent cookie across rotations.
    assert "max-age=" in refresh_cookie(response).lower()
    again = _refresh(client)
    assert again.status_code == 200
    assert again.json()["refresh_token"] != rotated


def test_body_token_wins_over_the_cookie(client: TestClient, accounts: AccountFactory) -> None:
    from_body = accounts.logged_in(client, "fresh_03").tokens
    in_cookie = login(client, "fresh_03").json()
    assert client.cookies.get("refresh_token") == in_cookie["refresh_token"]
    response = _refresh(client, from_body["refresh_token"])
    assert response.status_code == 200
    assert _session_id(response.json()["access_token"]) == _session_id(from_body["access_token"])
    assert _session_id(in_cookie["access_token"]) != _session_id(from_body["access_token"])


def test_reusing_a_rotated_token_revokes_the_whole_session(
    client: TestClient, accounts: AccountFactory
) -> None:
    account = accounts.logged_in(client, "fresh_04")
    first = account.tokens
    rotated = _refresh(client, first["refresh_token"]).json()
    client.cookies.clear()

    _assert_refused(_refresh(client, first["refresh_token"]))
    # The thief's or the victim's newer token is dead too, and so is its access token.
    _assert_refused(_refresh(client, rotated["refresh_token"]))
    assert client.get("/auth/me", headers=bearer(rotated["access_token"])).status_code == 401

    session_id = _session_id(first["access_token"])
    with app_session(client) as db:
        session = db.get(AuthSession, session_id)
        assert session.revoked_at is not None
        assert session.revoked_reason == "refresh_token_reuse"
        audit = db.scalars(select(AuditEntry)).all()
        assert [(a.action, a.target_type, a.target_id) for a in audit] == [
            ("session.refresh_token_reuse", "session", session_id)
        ]
        assert audit[0].details == {"user_id": account.user.id}
        assert audit[0].ip_address == "testclient"


def test_reuse_revokes_only_that_session(client: TestClient, accounts: AccountFactory) -> None:
    first = accounts.logged_in(client, "fresh_05").tokens
    other = login(client, "fresh_05").json()
    _refresh(client, first["refresh_token"])
    _assert_refused(_refresh(client, first["refresh_token"]))
    assert _refresh(client, other["refresh_token"]).status_code == 200


def test_unknown_missing_or_malformed_tokens_are_401(client: TestClient) -> None:
    _assert_refused(_refresh(client, "x" * 43))
    _assert_refused(_refresh(client, "nul\x00byte"))
    missing = _refresh(client)
    assert missing.status_code == 401
    assert missing.headers["WWW-Authenticate"] == "Bearer"
    assert client.post("/auth/refresh", json={"refresh_token": ""}).status_code == 422
    assert client.post("/auth/refresh", json={}).status_code == 422


def test_expired_token_is_401(client: TestClient, accounts: AccountFactory) -> None:
    first = accounts.logged_in(client, "fresh_06").tokens
    client.cookies.clear()
    with app_session(client) as db:
        db.execute(update(RefreshToken).values(expires_at=utcnow() - timedelta(seconds=1)))
        db.commit()
    _assert_refused(_refresh(client, first["refresh_token"]))
    with app_session(client) as db:
        # An expired token is not a reuse: the session stays as it was.
        assert db.scalars(select(AuthSession.revoked_at)).one() is None
        assert db.scalars(select(AuditEntry)).all() == []


def test_expired_session_is_401(client: TestClient, accounts: AccountFactory) -> None:
    first = accounts.logged_in(client, "fresh_07").tokens
    with app_session(client) as db:
        db.execute(update(AuthSession).values(expires_at=utcnow() - timedelta(seconds=1)))
        db.commit()
    _assert_refused(_refresh(client, first["refresh_token"]))


def test_revoked_session_token_is_401_and_not_consumed(
    client: TestClient, accounts: AccountFactory
) -> None:
    first = accounts.logged_in(client, "fresh_08").tokens
    assert (
        client.post("/auth/logout", json={"refresh_token": first["refresh_token"]}).status_code
        == 204
    )
    _assert_refused(_refresh(client, first["refresh_token"]))
    with app_session(client) as db:
        assert db.scalars(select(RefreshToken.used_at)).one() is None


def test_deactivated_users_cannot_refresh(client: TestClient, accounts: AccountFactory) -> None:
    account = accounts.logged_in(client, "fresh_09")
    with app_session(client) as db:
        db.execute(update(User).where(User.id == account.user.id).values(is_active=False))
        db.commit()
    _assert_refused(_refresh(client, account.tokens["refresh_token"]))
