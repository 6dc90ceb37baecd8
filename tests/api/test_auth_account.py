"""The caller's own account: /auth/me, change-password, sessions."""

from __future__ import annotations

from datetime import datetime, timedelta

from fastapi.testclient import TestClient
from jose import jwt
from sqlalchemy import update

from api.models import AuthSession, utcnow
from tests.support.accounts import DEFAULT_PASSWORD, AccountFactory, bearer, login
from tests.support.databases import app_session

NEW_PASSWORD = "N3w!password"


def _sid(access_token: str) -> int:
    return jwt.get_unverified_claims(access_token)["sid"]


def test_me_returns_the_caller(client: TestClient, accounts: AccountFactory) -> None:
    account = accounts.logged_in(client, "self_001")
    response = client.get("/auth/me", headers=account.headers)
    assert response.status_code == 200
    body = response.json()
    assert body["id"] == account.user.id
    assert body["username"] == "self_001"
    assert body["last_login_at"] is not None
    assert "password" not in response.text and "hash" not in response.text


def test_me_without_credentials_is_401(client: TestClient) -> None:
    for headers in ({}, {"Authorization": "Bearer"}, {"Authorization": "Basic abc"}):
        response = client.get("/auth/me", headers=headers)
        assert response.status_code == 401
        assert response.headers["WWW-Authenticate"] == "Bearer"
        assert isinstance(response.json()["detail"], str)


def test_patch_me_changes_the_name_only(client: TestClient, accounts: AccountFactory) -> None:
    account = accounts.logged_in(client, "self_002")
    response = client.patch(
        "/auth/me",
        headers=account.headers,
        json={"name": "  New Name  ", "role": "admin", "is_active": False, "username": "other"},
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["name"] == "New Name"
    assert (body["role"], body["is_active"], body["username"]) == ("member", True, "self_002")
    assert client.get("/auth/me", headers=account.headers).json()["name"] == "New Name"


def test_patch_me_validates_the_name(client: TestClient, accounts: AccountFactory) -> None:
    account = accounts.logged_in(client, "self_003")
    for body in ({}, {"name": ""}, {"name": "   "}, {"name": "n" * 101}, {"name": "a\x00b"}):
        response = client.patch("/auth/me", headers=account.headers, json=body)
        assert response.status_code == 422, body
        assert response.json()["detail"][0]["loc"][-1] == "name"
    assert client.patch("/auth/me", json={"name": "x"}).status_code == 401


def test_change_password_keeps_this_session_and_revokes_the_others(
    client: TestClient, accounts: AccountFactory
) -> None:
    account = accounts.logged_in(client, "self_004")
    other = login(client, "self_004").json()
    response = client.post(
        "/auth/change-password",
        headers=account.headers,
        json={"current_password": DEFAULT_PASSWORD, "new_password": NEW_PASSWORD},
    )
    assert response.status_code == 204
    assert response.content == b""

    assert client.get("/auth/me", headers=account.headers).status_code == 200
    kept = client.post("/auth/refresh", json={"refresh_token": account.tokens["refresh_token"]})
    assert kept.status_code == 200
    assert client.get("/auth/me", headers=bearer(other["access_token"])).status_code == 401
    dropped = client.post("/auth/refresh", json={"refresh_token": other["refresh_token"]})
    assert dropped.status_code == 401
    with app_session(client) as db:
        reason = db.get(AuthSession, _sid(other["access_token"])).revoked_reason
        assert reason == "password_changed"

    assert login(client, "self_004", DEFAULT_PASSWORD).status_code == 401
    assert login(client, "self_004", NEW_PASSWORD).status_code == 200


def test_change_password_wrong_current_is_400(client: TestClient, accounts: AccountFactory) -> None:
    account = accounts.logged_in(client, "self_005")
    for current in ("Wrong!pass1", DEFAULT_PASSWORD + "\x00", "A1!" + "x" * 80):
        response = client.post(
            "/auth/change-password",
            headers=account.headers,
            json={"current_password": current, "new_password": NEW_PASSWORD},
        )
        assert response.status_code == 400
        assert response.json() == {"detail": "Current password is incorrect"}
    assert login(client, "self_005").status_code == 200


def test_change_password_new_password_follows_the_policy(
    client: TestClient, accounts: AccountFactory
) -> None:
    account = accounts.logged_in(client, "self_006")
    for new_password, rule in (
        ("short", "at least 8"),
        ("nouppercase1!", "uppercase"),
        ("Self_006", "same as the username"),
        ("Aa1!" + "é" * 34 + "x", "72 bytes"),
    ):
        response = client.post(
            "/auth/change-password",
            headers=account.headers,
            json={"current_password": DEFAULT_PASSWORD, "new_password": new_password},
        )
        assert response.status_code == 422
        (error,) = response.json()["detail"]
        assert error["loc"] == ["body", "new_password"]
        assert rule in error["msg"]
    assert login(client, "self_006").status_code == 200
    unauthenticated = client.post(
        "/auth/change-password",
        json={"current_password": DEFAULT_PASSWORD, "new_password": NEW_PASSWORD},
    )
    assert unauthenticated.status_code == 401


def test_sessions_lists_active_sessions_and_marks_the_current_one(
    client: TestClient, accounts: AccountFactory
) -> None:
    account = accounts.logged_in(client, "self_007")
    phone = client.post(
        "/auth/login",
        json={"username": "self_007", "password": DEFAULT_PASSWORD},
        headers={"User-Agent": "PhoneApp/1.0"},
    ).json()
    gone = login(client, "self_007").json()
    expired = login(client, "self_007").json()
    assert (
        client.post("/auth/logout", json={"refresh_token": gone["refresh_token"]}).status_code
        == 204
    )
    with app_session(client) as db:
        db.execute(
            update(AuthSession)
            .where(AuthSession.id == _sid(expired["access_token"]))
            .values(expires_at=utcnow() - timedelta(seconds=1))
        )
        db.commit()
    accounts.logged_in(client, "self_008")  # someone else's session never shows

    response = client.get("/auth/sessions", headers=bearer(phone["access_token"]))
    assert response.status_code == 200
    sessions = response.json()
    assert {s["id"] for s in sessions} == {
        _sid(account.tokens["access_token"]),
        _sid(phone["access_token"]),
    }
    for session in sessions:
        assert set(session) == {
            "id",
            "created_at",
            "last_used_at",
            "expires_at",
            "ip_address",
            "user_agent",
            "current",
        }
        assert datetime.fromisoformat(session["expires_at"]) > datetime.fromisoformat(
            session["created_at"]
        )
        assert session["ip_address"] == "testclient"
    current = [s for s in sessions if s["current"]]
    assert [s["id"] for s in current] == [_sid(phone["access_token"])]
    assert current[0]["user_agent"] == "PhoneApp/1.0"
    assert client.get("/auth/sessions").status_code == 401


def test_delete_session_revokes_it(client: TestClient, accounts: AccountFactory) -> None:
    account = accounts.logged_in(client, "self_009")
    other = login(client, "self_009").json()
    response = client.delete(
        f"/auth/sessions/{_sid(other['access_token'])}", headers=account.headers
    )
    assert response.status_code == 204
    assert client.get("/auth/me", headers=bearer(other["access_token"])).status_code == 401
    assert (
        client.post("/auth/refresh", json={"refresh_token": other["refresh_token"]}).status_code
        == 401
    )
    listed = client.get("/auth/sessions", headers=account.headers).json()
    assert [s["id"] for s in listed] == [_sid(account.tokens["access_token"])]
    # Revoking the current session signs this token out.
    own = client.delete(f"/auth/sessions/{listed[0]['id']}", headers=account.headers)
    assert own.status_code == 204
    assert client.get("/auth/me", headers=account.headers).status_code == 401


def test_delete_session_of_someone_else_or_unknown_is_404(
    client: TestClient, accounts: AccountFactory
) -> None:
    mine = accounts.logged_in(client, "self_010")
    theirs = accounts.logged_in(client, "self_011")
    their_session = _sid(theirs.tokens["access_token"])
    for session_id in (their_session, 999_999):
        response = client.delete(f"/auth/sessions/{session_id}", headers=mine.headers)
        assert response.status_code == 404, session_id
        assert response.json() == {"detail": "Session not found"}
    assert client.get("/auth/me", headers=theirs.headers).status_code == 200
    for bad_id in ("abc", "0", str(2**31), str(2**63)):
        response = client.delete(f"/auth/sessions/{bad_id}", headers=mine.headers)
        assert response.status_code == 422, bad_id
    assert client.delete(f"/auth/sessions/{their_session}").status_code == 401
