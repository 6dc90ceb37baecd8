"""Accounts in tests: an account factory that writes user rows directly, sign-up and login
through the API, Bearer headers, refresh cookies, the start-up admin."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from api.core.db import Database, writes
from api.core.security import PasswordHasher
from api.models import Role, User

TEST_JWT_SECRET = "test-secret-" + "x" * 40
TEST_BCRYPT_ROUNDS = 4  # bcrypt's minimum: test apps and servers hash fast
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


@dataclass(frozen=True)
class Account:
    """A user row the factory wrote, with the password that logs it in."""

    id: int
    username: str
    email: str
    password: str

    def login(self, client: Any) -> LoggedIn:
        """Logs in through the API of `client` (TestClient or LiveClient)."""
        response = login(client, self.username, self.password)
        assert response.status_code == 200, response.text
        return LoggedIn(user=self, tokens=response.json())


@dataclass(frozen=True)
class LoggedIn:
    """An account and the token pair of one login session."""

    user: Account
    tokens: dict[str, Any]

    @property
    def headers(self) -> dict[str, str]:
        return bearer(self.tokens["access_token"])


class AccountFactory:
    """Writes accounts straight into a test database, for tests that are not about sign-up:
    no password policy, no sign-up side effects, any role and state. The password is hashed at
    the test apps' bcrypt rounds, so logging in costs what it costs there."""

    def __init__(self, database_url: str, bcrypt_rounds: int = TEST_BCRYPT_ROUNDS) -> None:
        self._database = Database(database_url)
        self._hasher = PasswordHasher(bcrypt_rounds)

    def create(
        self,
        username: str,
        *,
        password: str = DEFAULT_PASSWORD,
        role: Role = Role.MEMBER,
        is_active: bool = True,
        is_verified: bool = False,
        email: str | None = None,
        name: str | None = None,
    ) -> Account:
        """A new account; email and name default to what `signup` sends, and, as after
        sign-up, the address is not verified unless asked for."""
        user = User(
            username=username,
            email=email or f"{username}@example.com",
            name=name or username.title(),
            password_hash=self._hasher.hash(password),
            role=role.value,
            is_active=is_active,
            is_verified=is_verified,
        )
        with self._database.session() as db, writes(db):
            db.add(user)
        return Account(id=user.id, username=user.username, email=user.email, password=password)

    def logged_in(self, client: Any, username: str, **fields: Any) -> LoggedIn:
        """A new account (see `create`), logged in through the API of `client`."""
        return self.create(username, **fields).login(client)

    def close(self) -> None:
        self._database.dispose()
