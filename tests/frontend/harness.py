"""Helpers of the dashboard tests: reach the API directly, seed a session, read the page."""

from __future__ import annotations

import itertools
from dataclasses import replace
from datetime import timedelta
from typing import Any

from streamlit.testing.v1 import AppTest

from api.core.config import Settings
from api.core.credentials import token_codec_from_settings
from frontend.api_client import ApiClient
from frontend.auth.session import AUTH_KEY, CLIENT_KEY
from frontend.auth.state import AuthState, Tokens
from frontend.components.verification import BANNER_START
from frontend.sitemap import PAGES
from tests.support.accounts import DEFAULT_PASSWORD, TEST_JWT_SECRET, bearer, login, register
from tests.support.images import upload_image
from tests.support.paths import REPO_ROOT
from tests.support.servers import LiveClient

_names = itertools.count(1)
FRONTEND = REPO_ROOT / "frontend"


def unique_name(prefix: str) -> str:
    """Usernames unique within the test session (the API server is shared)."""
    return f"{prefix}_{next(_names)}"


def new_user(api_url: str, prefix: str = "user") -> tuple[str, Tokens]:
    """Signs a member up and logs in; returns the username and the token pair."""
    username = unique_name(prefix)
    account = register(LiveClient(api_url), username)
    return username, Tokens.from_pair(account["tokens"])


def api_login(api_url: str, username: str, password: str = DEFAULT_PASSWORD) -> Tokens:
    response = login(LiveClient(api_url), username, password)
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


def open_page(
    app: AppTest, api_url: str, tokens: Tokens, page: str, **query: str | list[str]
) -> AppTest:
    """Runs the app logged in with `tokens`, then switches to `page` (with URL query values; a
    list is a repeated key)."""
    logged_in(app, api_url, tokens)
    app.run()
    app.query_params.update(query)
    return app.switch_page(page).run()


def with_expired_access_token(api_url: str, tokens: Tokens) -> Tokens:
    """The same pair, but its access token (same user and session, signed with the server's
    secret) expired: what a tab left open past the token's lifetime holds."""
    me = LiveClient(api_url).get("/auth/me", headers=bearer(tokens.access_token)).json()
    settings = Settings(_env_file=None, jwt_secret_key=TEST_JWT_SECRET)  # type: ignore[call-arg]
    codec = token_codec_from_settings(settings)
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


def page_warnings(app: AppTest) -> list[str]:
    """The warnings a page showed, without the unverified-address banner above every page."""
    return [w.value for w in app.warning if not w.value.startswith(BANNER_START)]


def menu(app: AppTest) -> list[str]:
    """Titles of the pages the menu listed in the last run.

    AppTest keeps what st.navigation registered (to resolve switch_page) but not whether a page
    was hidden, and the sidebar menu is not an element it exposes. The hidden pages are the
    stand-ins for pages the visitor may not see (functions, without a script) and the sitemap's
    pages that are not `in_menu`.
    """
    listed = {str(FRONTEND / spec.script) for spec in PAGES if spec.in_menu}
    return [page["page_name"] for page in _registered(app) if page["script_path"] in listed]


def stand_ins(app: AppTest) -> list[str]:
    """Titles of the pages registered in the last run only as stand-ins (see `menu`)."""
    return [page["page_name"] for page in _registered(app) if not page["script_path"]]


def registered_pages(app: AppTest) -> list[str]:
    """Titles of every page registered in the last run, hidden ones included."""
    return [page["page_name"] for page in _registered(app)]


def _registered(app: AppTest) -> list[dict[str, Any]]:
    return list(app._registered_pages.values())


def submit(app: AppTest, form: str, label: str) -> AppTest:
    return app.button(key=f"FormSubmitter:{form}-{label}").click().run()


def upload_png(api_url: str, tokens: Tokens, name: str = "tiny.png") -> dict[str, Any]:
    response = upload_image(LiveClient(api_url), bearer(tokens.access_token), filename=name)
    assert response.status_code == 201, response.text
    return response.json()
