"""Helpers of the dashboard tests: reach the API directly, seed a session, read the page."""

from __future__ import annotations

import itertools
from dataclasses import replace
from datetime import timedelta
from io import BytesIO
from typing import Any

import requests
from PIL import Image
from streamlit.testing.v1 import AppTest

from api.core.config import Settings
from api.services.sessions import access_codec
from frontend.api_client import ApiClient
from frontend.auth.session import AUTH_KEY, CLIENT_KEY
from frontend.auth.state import AuthState, Tokens
from tests.support.accounts import DEFAULT_PASSWORD, TEST_JWT_SECRET, bearer, register

_names = itertools.count(1)


class ApiCaller:
    """`requests` with the server's base URL, shaped like TestClient for tests/support.py."""

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url

    def request(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        timeout = kwargs.pop("timeout", 30)
        return requests.request(method, self.base_url + path, timeout=timeout, **kwargs)

    def get(self, path: str, **kwargs: Any) -> requests.Response:
        return self.request("GET", path, **kwargs)

    def post(self, path: str, **kwargs: Any) -> requests.Response:
        return self.request("POST", path, **kwargs)

    def patch(self, path: str, **kwargs: Any) -> requests.Response:
        return self.request("PATCH", path, **kwargs)


def unique_name(prefix: str) -> str:
    """Usernames unique within the test session (the API server is shared)."""
    return f"{prefix}_{next(_names)}"


def new_user(api_url: str, prefix: str = "user") -> tuple[str, Tokens]:
    """Signs a member up and logs in; returns the username and the token pair."""
    username = unique_name(prefix)
    account = register(ApiCaller(api_url), username)
    return username, Tokens.from_pair(account["tokens"])


def api_login(api_url: str, username: str, password: str = DEFAULT_PASSWORD) -> Tokens:
    response = ApiCaller(api_url).post(
        "/auth/login", json={"username": username, "password": password}
    )
    assert response.status_code == 200, response.text
    return Tokens.from_pair(response.json())


def logged_in(app: AppTest, api_url: str, tokens: Tokens) -> AuthState:
    """Starts the app's session as already logged in with `tokens` (skips the login form)."""
    auth = AuthState()
    auth.store(tokens, remember=False)
    auth.cookie_dirty = False
    app.session_state[AUTH_KEY] = auth
    app.session_state[CLIENT_KEY] = ApiClient(auth, base_url=api_url)
    return auth


def open_page(app: AppTest, api_url: str, tokens: Tokens, page: str, **query: str) -> AppTest:
    """Runs the app logged in with `tokens`, then switches to `page` (with URL query values)."""
    logged_in(app, api_url, tokens)
    app.run()
    app.query_params.update(query)
    return app.switch_page(page).run()


def with_expired_access_token(api_url: str, tokens: Tokens) -> Tokens:
    """The same pair, but its access token (same user and session, signed with the server's
    secret) expired: what a tab left open past the token's lifetime holds."""
    me = ApiCaller(api_url).get("/auth/me", headers=bearer(tokens.access_token)).json()
    settings = Settings(_env_file=None, jwt_secret_key=TEST_JWT_SECRET)  # type: ignore[call-arg]
    codec = access_codec(settings)
    codec.lifetime = timedelta(minutes=-5)
    expired = codec.encode(
        user_id=me["id"],
        username=me["username"],
        role=me["role"],
        session_id=codec.decode(tokens.access_token).session_id,
    )
    return replace(tokens, access_token=expired)


def texts(app: AppTest) -> str:
    """Everything the page shows as text, for assertions about messages."""
    parts = [
        element.value
        for kind in ("title", "header", "subheader", "markdown", "caption")
        for element in getattr(app, kind)
    ]
    parts += [element.value for element in (*app.error, *app.warning, *app.success, *app.info)]
    return "\n".join(str(part) for part in parts)


def menu(app: AppTest) -> list[str]:
    """Titles of the pages st.navigation registered in the last run (AppTest keeps them to
    resolve switch_page; the sidebar menu itself is not an element it exposes)."""
    return [page["page_name"] for page in app._registered_pages.values()]


def submit(app: AppTest, form: str, label: str) -> AppTest:
    return app.button(key=f"FormSubmitter:{form}-{label}").click().run()


def png_bytes(size: tuple[int, int] = (24, 16), color: tuple[int, int, int] = (200, 80, 40)):
    buffer = BytesIO()
    Image.new("RGB", size, color).save(buffer, "PNG")
    return buffer.getvalue()


def upload_png(api_url: str, tokens: Tokens, name: str = "tiny.png") -> dict[str, Any]:
    response = ApiCaller(api_url).post(
        "/images",
        headers=bearer(tokens.access_token),
        files={"file": (name, png_bytes(), "image/png")},
    )
    assert response.status_code == 201, response.text
    return response.json()
