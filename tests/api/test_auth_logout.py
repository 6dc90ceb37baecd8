"""POST /auth/logout and /auth/logout-all: sessions revoked, cookie cleared, idempotent."""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import select

from api.models import AuthSession
from tests.support.accounts import AccountFactory, bearer, login, refresh_cookie
from tests.support.databases import app_session


def _assert_cookie_cleared(response: Any) -> None:
    attributes = [part.strip().lower() for part in refresh_cookie(response).split(";")]
    assert attributes[0] in ("refresh_token=", 'refresh_token=""')
    assert "max-age=0" in attributes
    assert "path=/auth" in attributes
    assert "httponly" in attributes


def _revoked_reasons(client: TestClient) -> list[str | None]:
    with app_session(client) as db:
        return list(db.scalars(select(AuthSession.revoked_reason).order_by(AuthSession.id)))


def test_logout_with_body_revokes_that_session_only(
    client: TestClient, accounts: AccountFactory
) -> None:
    account = accounts.logged_in(client, "bye_0001")
    other = login(client, "bye_0001").json()
    tokens = account.tokens
    response = client.post("/auth/logout", json={"refresh_token": tokens["refresh_token"]})
    assert response.status_code == 204
    assert response.content == b""
    _assert_cookie_cleared(response)
    assert _revoked_reasons(client) == ["logout", None]
    assert (
        client.post("/auth/refresh", json={"refresh_token": tokens["refresh_token"]}).status_code
        == 401
    )
    assert client.get("/auth/me", headers=account.headers).status_code == 401
    assert client.get("/auth/me", headers=bearer(other["access_token"])).status_code == 200


def test_logout_with_the_cookie(client: TestClient, accounts: AccountFactory) -> None:
    account = accounts.logged_in(client, "bye_0002")
    assert client.cookies.get("refresh_token") == account.tokens["refresh_token"]
    response = client.post("/auth/logout")
    assert response.status_code == 204
    _assert_cookie_cleared(response)
    assert client.cookies.get("refresh_token") is None
    assert _revoked_reasons(client) == ["logout"]
    refused = client.post("/auth/refresh", json={"refresh_token": account.tokens["refresh_token"]})
    assert refused.status_code == 401


def test_logout_is_idempotent_and_quiet_about_unknown_tokens(
    client: TestClient, accounts: AccountFactory
) -> None:
    account = accounts.logged_in(client, "bye_0003")
    client.cookies.clear()
    for body in ({"refresh_token": "unknown-token"}, None, {}):
        response = (
            client.post("/auth/logout", json=body)
            if body is not None
            else client.post("/auth/logout")
        )
        assert response.status_code == 204
        _assert_cookie_cleared(response)
    assert _revoked_reasons(client) == [None]
    token = {"refresh_token": account.tokens["refresh_token"]}
    assert client.post("/auth/logout", json=token).status_code == 204
    assert client.post("/auth/logout", json=token).status_code == 204
    assert _revoked_reasons(client) == ["logout"]


def test_logout_all_revokes_every_session_of_the_caller(
    client: TestClient, accounts: AccountFactory
) -> None:
    account = accounts.logged_in(client, "bye_0004")
    second = login(client, "bye_0004").json()
    stranger = accounts.logged_in(client, "bye_0005")
    response = client.post("/auth/logout-all", headers=account.headers)
    assert response.status_code == 204
    _assert_cookie_cleared(response)
    for tokens in (account.tokens, second):
        assert client.get("/auth/me", headers=bearer(tokens["access_token"])).status_code == 401
        refused = client.post("/auth/refresh", json={"refresh_token": tokens["refresh_token"]})
        assert refused.status_code == 401
    assert client.get("/auth/me", headers=stranger.headers).status_code == 200
    assert _revoked_reasons(client) == ["logout_all", "logout_all", None]


def test_logout_all_needs_a_bearer_token(client: TestClient) -> None:
    response = client.post("/auth/logout-all")
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"] == "Bearer"
