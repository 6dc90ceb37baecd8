"""POST /auth/login and /auth/token: credentials, deactivated accounts, cookies, equal work."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient

from api.core.config import Settings
from api.core.security import PasswordHasher
from tests.support.accounts import (
    DEFAULT_PASSWORD,
    AccountFactory,
    bearer,
    login,
    refresh_cookie,
    signup,
)

INVALID = {"detail": "Invalid username or password"}


def _assert_token_pair(response: Any, refresh_days: int) -> dict[str, Any]:
    assert response.status_code == 200, response.text
    body = response.json()
    assert set(body) == {
        "access_token",
        "refresh_token",
        "token_type",
        "expires_in",
        "refresh_expires_in",
    }
    assert body["token_type"] == "bearer"
    assert body["expires_in"] == 15 * 60
    assert abs(body["refresh_expires_in"] - refresh_days * 86400) <= 5
    assert len(body["refresh_token"]) >= 43  # 256 bits, URL-safe base64
    assert response.headers["Cache-Control"] == "no-store"
    return body


def test_login_by_username_or_email_case_insensitively(
    client: TestClient, accounts: AccountFactory
) -> None:
    accounts.create("login_01")
    for identifier in ("login_01", "LOGIN_01", "login_01@example.com", "Login_01@Example.COM"):
        tokens = _assert_token_pair(login(client, identifier), refresh_days=1)
        me = client.get("/auth/me", headers=bearer(tokens["access_token"]))
        assert me.status_code == 200
        assert me.json()["username"] == "login_01"


def test_unknown_user_and_wrong_password_get_the_same_401(
    client: TestClient, accounts: AccountFactory
) -> None:
    accounts.create("login_02")
    wrong_password = login(client, "login_02", DEFAULT_PASSWORD + "x")
    unknown_user = login(client, "nobody_here", DEFAULT_PASSWORD)
    unknown_email = login(client, "nobody@example.com", DEFAULT_PASSWORD)
    for response in (wrong_password, unknown_user, unknown_email):
        assert response.status_code == 401
        assert response.json() == INVALID
        assert response.headers["WWW-Authenticate"] == "Bearer"
        assert "set-cookie" not in response.headers


def test_odd_identifiers_are_just_unknown_users(
    client: TestClient, accounts: AccountFactory
) -> None:
    accounts.create("login_03")
    for identifier in ("nul\x00user", "login_03\x00", "nul\x00@example.com", " ", "x" * 320):
        response = login(client, identifier)
        assert response.status_code == 401, identifier
        assert response.json() == INVALID


def test_password_with_nul_is_a_401_not_an_error(
    client: TestClient, accounts: AccountFactory
) -> None:
    accounts.create("login_04")
    assert login(client, "login_04", DEFAULT_PASSWORD + "\x00").status_code == 401
    assert login(client, "login_04", "\x00").status_code == 401


def test_deactivated_account_is_403_only_with_the_right_password(
    client: TestClient, accounts: AccountFactory
) -> None:
    accounts.create("login_05", is_active=False)
    response = login(client, "login_05")
    assert response.status_code == 403
    assert response.json() == {"detail": "This account is deactivated"}
    assert "set-cookie" not in response.headers
    # A wrong password says nothing about the account's state.
    assert login(client, "login_05", DEFAULT_PASSWORD + "x").json() == INVALID


def test_successful_login_sets_last_login_at(client: TestClient) -> None:
    user = signup(client, "login_06").json()
    assert user["last_login_at"] is None
    before = datetime.now(UTC)
    tokens = login(client, "login_06").json()
    me = client.get("/auth/me", headers=bearer(tokens["access_token"])).json()
    last_login = datetime.fromisoformat(me["last_login_at"])
    assert before - timedelta(seconds=1) <= last_login <= datetime.now(UTC)


def test_refresh_cookie_attributes_without_remember_me(
    client: TestClient, accounts: AccountFactory
) -> None:
    accounts.create("login_07")
    response = login(client, "login_07")
    body = _assert_token_pair(response, refresh_days=1)
    cookie = refresh_cookie(response)
    attributes = [part.strip().lower() for part in cookie.split(";")]
    assert attributes[0] == f"refresh_token={body['refresh_token']}".lower()
    assert "httponly" in attributes
    assert "samesite=lax" in attributes
    assert "path=/auth" in attributes
    assert "secure" not in attributes
    # A session cookie: it ends with the browser.
    assert not any(a.startswith(("max-age", "expires")) for a in attributes)


def test_remember_me_makes_a_persistent_30_day_cookie(
    client: TestClient, accounts: AccountFactory
) -> None:
    accounts.create("login_08")
    response = login(client, "login_08", remember_me=True)
    body = _assert_token_pair(response, refresh_days=30)
    attributes = [part.strip().lower() for part in refresh_cookie(response).split(";")]
    assert f"max-age={body['refresh_expires_in']}" in attributes


def test_refresh_cookie_is_secure_when_configured(make_client, accounts: AccountFactory) -> None:
    with make_client(cookie_secure=True, refresh_token_expire_days=7) as client:
        accounts.create("login_09")
        response = login(client, "login_09", remember_me=True)
        _assert_token_pair(response, refresh_days=7)
        attributes = [part.strip().lower() for part in refresh_cookie(response).split(";")]
        assert "secure" in attributes


def test_token_endpoint_is_an_oauth2_password_form_login(
    client: TestClient, accounts: AccountFactory
) -> None:
    accounts.create("login_10")
    response = client.post(
        "/auth/token", data={"username": "login_10", "password": DEFAULT_PASSWORD}
    )
    tokens = _assert_token_pair(response, refresh_days=1)
    assert client.get("/auth/me", headers=bearer(tokens["access_token"])).status_code == 200
    by_email = client.post(
        "/auth/token",
        data={
            "username": "login_10@example.com",
            "password": DEFAULT_PASSWORD,
            "grant_type": "password",
        },
    )
    assert by_email.status_code == 200
    wrong = client.post("/auth/token", data={"username": "login_10", "password": "nope"})
    assert wrong.status_code == 401 and wrong.json() == INVALID
    assert client.post("/auth/token", data={"username": "login_10"}).status_code == 422
    json_body = client.post("/auth/token", json={"username": "login_10", "password": "x"})
    assert json_body.status_code == 422


def test_login_body_is_validated(client: TestClient) -> None:
    assert client.post("/auth/login", json={"username": "someone"}).status_code == 422
    assert client.post("/auth/login", json={"password": "x"}).status_code == 422
    assert client.post("/auth/login", json={"username": "", "password": "x"}).status_code == 422


class _VerifySpy:
    """Records the hashes bcrypt is asked to check (observing work, not replacing it)."""

    def __init__(self, hasher: PasswordHasher, monkeypatch: pytest.MonkeyPatch) -> None:
        self.hasher = hasher
        self.hashes: list[str] = []
        original = self.hasher._context.verify

        def spy(secret: str, hash: str, **kwargs: Any) -> bool:
            self.hashes.append(hash)
            return original(secret, hash, **kwargs)

        monkeypatch.setattr(self.hasher._context, "verify", spy)

    def take(self) -> list[str]:
        taken, self.hashes = self.hashes, []
        return taken


def _cost(bcrypt_hash: str) -> str:
    return bcrypt_hash.split("$")[2]


def test_unknown_users_cost_the_same_bcrypt_work(
    client: TestClient,
    settings: Settings,
    monkeypatch: pytest.MonkeyPatch,
    accounts: AccountFactory,
) -> None:
    accounts.create("login_11")
    spy = _VerifySpy(client.app.state.password_hasher, monkeypatch)

    assert login(client, "login_11", "Wrong!pass1").status_code == 401
    known = spy.take()
    assert login(client, "ghost_user", "Wrong!pass1").status_code == 401
    unknown = spy.take()
    assert login(client, "ghost@example.com", "Wrong!pass1").status_code == 401
    unknown_email = spy.take()
    assert login(client, "login_11", "A1!" + "x" * 80).status_code == 401
    too_long = spy.take()

    assert len(known) == len(unknown) == len(unknown_email) == len(too_long) == 1
    assert unknown[0] == unknown_email[0] == too_long[0] != known[0]
    assert _cost(unknown[0]) == _cost(known[0]) == f"{settings.bcrypt_rounds:02d}"


def test_deactivated_user_costs_the_same_bcrypt_work(
    client: TestClient,
    settings: Settings,
    monkeypatch: pytest.MonkeyPatch,
    accounts: AccountFactory,
) -> None:
    accounts.create("login_12", is_active=False)
    spy = _VerifySpy(client.app.state.password_hasher, monkeypatch)
    assert login(client, "login_12").status_code == 403
    assert len(spy.take()) == 1
