"""Accounts in tests: sign-up and login through the API, Bearer headers, refresh cookies, the
start-up admin."""

from __future__ import annotations

from typing import Any

TEST_JWT_SECRET = "test-secret-" + "x" * 40
DEFAULT_PASSWORD = "Str0ng!pass"
ADMIN_USERNAME = "rootadmin"


def signup(client: Any, username: str, password: str = DEFAULT_PASSWORD, **fields: Any) -> Any:
    """Signs a user up through the API; returns the response."""
    body = {
        "username": username,
        "email": f"{username}@example.com",
        "name": username.title(),
        "password": password,
        "password_confirm": password,
        "agree_terms": True,
    }
    body.update(fields)
    return client.post("/auth/signup", json=body)


def login(client: Any, username: str, password: str = DEFAULT_PASSWORD, **fields: Any) -> Any:
    return client.post("/auth/login", json={"username": username, "password": password, **fields})


def bearer(access_token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {access_token}"}


def register(client: Any, username: str, password: str = DEFAULT_PASSWORD) -> dict[str, Any]:
    """Signs up and logs in; returns {"user", "tokens", "headers"}."""
    created = signup(client, username, password)
    assert created.status_code == 201, created.text
    logged_in = login(client, username, password)
    assert logged_in.status_code == 200, logged_in.text
    tokens = logged_in.json()
    return {"user": created.json(), "tokens": tokens, "headers": bearer(tokens["access_token"])}


def login_headers(client: Any, username: str, password: str = DEFAULT_PASSWORD) -> dict[str, str]:
    """Logs an existing account in; returns its Bearer headers."""
    response = login(client, username, password)
    assert response.status_code == 200, response.text
    return bearer(response.json()["access_token"])


def refresh_cookie(response: Any) -> str:
    """The Set-Cookie header a response sets for the refresh token."""
    cookies = [c for c in response.headers.get_list("set-cookie") if c.startswith("refresh_token=")]
    assert len(cookies) == 1, response.headers
    return cookies[0]


def admin_settings() -> dict[str, str]:
    """Settings overrides whose app creates the admin ADMIN_USERNAME at start-up."""
    return {
        "admin_username": ADMIN_USERNAME,
        "admin_email": f"{ADMIN_USERNAME}@example.com",
        "admin_password": DEFAULT_PASSWORD,
    }
