"""What the page asks the dashboard's cookie route to do: keep the refresh token for a "remember
me" login (following every rotation), and clear it otherwise. The browser side — the cookie
surviving a reload — is the real-browser test's part."""

from __future__ import annotations

import re

from streamlit.testing.v1 import AppTest

from frontend.api_client import ApiClient
from frontend.auth.cookie import HANDOFFS, ROUTE_PATH
from frontend.auth.session import AUTH_KEY
from frontend.auth.state import AuthState, RememberedLogins, TokenBox, Tokens
from tests.frontend.harness import new_user, submit, with_expired_access_token
from tests.support.accounts import DEFAULT_PASSWORD


def log_in(app: AppTest, username: str, remember: bool) -> AuthState:
    app.run()
    app.text_input(key="login_username").input(username)
    app.text_input(key="login_password").input(DEFAULT_PASSWORD)
    app.checkbox(key="login_remember").set_value(remember)
    submit(app, "login_form", "Log in")
    return app.session_state[AUTH_KEY]


def cookie_ticket(app: AppTest) -> str:
    """The ticket of the invisible cookie image the page rendered."""
    (element,) = [html for html in app.html if ROUTE_PATH in html.value]
    match = re.search(rf'src="{ROUTE_PATH}\?ticket=([\w-]+)"', element.value)
    assert match, element.value
    return match.group(1)


def test_remember_me_hands_the_current_refresh_token_to_the_cookie_route(
    app: AppTest, api_url: str
) -> None:
    username, _ = new_user(api_url, "remember")
    auth = log_in(app, username, remember=True)
    assert auth.remember
    handoff = HANDOFFS.redeem(cookie_ticket(app))
    assert handoff is not None
    assert auth.tokens is not None
    assert handoff.refresh_token == auth.tokens.refresh_token
    assert handoff.max_age == auth.tokens.refresh_expires_in

    app.run()  # redeemed: nothing more to hand over
    assert not [html for html in app.html if ROUTE_PATH in html.value]


def test_a_rotation_is_handed_over_too(app: AppTest, api_url: str) -> None:
    username, _ = new_user(api_url, "rotating")
    auth = log_in(app, username, remember=True)
    HANDOFFS.redeem(cookie_ticket(app))
    assert auth.tokens is not None
    app.session_state["api_client"]._refresh(used_access_token=auth.tokens.access_token)

    app.run()
    handoff = HANDOFFS.redeem(cookie_ticket(app))
    assert handoff is not None
    assert handoff.refresh_token == auth.tokens.refresh_token


def test_without_remember_me_the_cookie_is_cleared(app: AppTest, api_url: str) -> None:
    username, _ = new_user(api_url, "forget")
    auth = log_in(app, username, remember=False)
    assert not auth.remember
    handoff = HANDOFFS.redeem(cookie_ticket(app))
    assert handoff is not None
    assert handoff.refresh_token is None


def test_logging_out_clears_the_cookie(app: AppTest, api_url: str) -> None:
    username, _ = new_user(api_url, "leaving")
    log_in(app, username, remember=True)
    HANDOFFS.redeem(cookie_ticket(app))
    app.button(key="sidebar_logout").click().run()
    assert app.title[0].value == "Log in"
    handoff = HANDOFFS.redeem(cookie_ticket(app))
    assert handoff is not None
    assert handoff.refresh_token is None


def count_refreshes(client: ApiClient) -> list[int]:
    calls: list[int] = []
    client._http.hooks["response"].append(
        lambda response, **_: calls.append(1) if response.url.endswith("/auth/refresh") else None
    )
    return calls


def test_tabs_continuing_one_remembered_login_share_its_tokens(api_url: str) -> None:
    """A second tab (or a reload while the first lives on) must not rotate the cookie's token
    behind the first tab's back: the first would later present a rotated token, which the API
    treats as reuse and answers by revoking the session for both."""
    username, _ = new_user(api_url, "two_tabs")
    first = ApiClient(AuthState(), base_url=api_url)
    first.login(username, DEFAULT_PASSWORD, remember_me=True)
    assert first.auth.tokens is not None
    cookie = first.auth.tokens.refresh_token

    second = ApiClient(AuthState(), base_url=api_url)
    second_refreshes = count_refreshes(second)
    assert second.resume(cookie)["username"] == username
    assert second.auth.tokens == first.auth.tokens
    assert second_refreshes == []

    # The first tab's access token runs out: it rotates the pair for both tabs.
    first.auth.store(with_expired_access_token(api_url, first.auth.tokens))
    first_refreshes = count_refreshes(first)
    assert first.load_user()["username"] == username
    assert first_refreshes == [1]
    assert first.auth.tokens.refresh_token != cookie
    assert second.load_user()["username"] == username
    assert second_refreshes == []

    # A third tab reloading before the browser got the new cookie still joins.
    third = ApiClient(AuthState(), base_url=api_url)
    third_refreshes = count_refreshes(third)
    third.resume(cookie)
    assert third.auth.tokens == first.auth.tokens
    assert third_refreshes == []

    # Logging out in one tab logs every tab of that login out.
    second.logout()
    assert not first.auth.logged_in
    assert not third.auth.logged_in


def test_an_unknown_cookie_token_is_refreshed_at_the_api(api_url: str) -> None:
    _, tokens = new_user(api_url, "elsewhere")  # a login this dashboard process never saw
    client = ApiClient(AuthState(), base_url=api_url)
    refreshes = count_refreshes(client)
    client.resume(tokens.refresh_token)
    assert refreshes == [1]
    assert client.auth.tokens is not None
    assert client.auth.tokens.refresh_token != tokens.refresh_token
    assert client.auth.remember


def test_a_rotated_token_finds_its_login_only_once_and_only_briefly() -> None:
    now = [0.0]
    logins = RememberedLogins(grace_s=10, clock=lambda: now[0])
    box = TokenBox()
    old = Tokens("a1", "r1", 3600)
    new = Tokens("a2", "r2", 3600)
    box.tokens = old
    logins.rotated(box, None, old)
    box.tokens = new
    logins.rotated(box, old, new)
    assert logins.find("r1") is box
    # Once: presented again, the rotated token goes to the API (and its reuse detection).
    assert logins.find("r1") is None
    assert logins.find("r2") is box
    assert logins.find("r2") is box

    newer = Tokens("a3", "r3", 3600)
    box.tokens = newer
    logins.rotated(box, new, newer)
    now[0] = 11  # past the grace: a tab this late must go to the API
    assert logins.find("r2") is None
    assert logins.find("r3") is box
    logins.forget(box)
    assert logins.find("r3") is None
