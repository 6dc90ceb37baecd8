"""What the page asks the dashboard's cookie route to do: keep the refresh token for a "remember
me" login (following every rotation), and clear it otherwise. The browser side — the cookie
surviving a reload — is the real-browser test's part."""

from __future__ import annotations

import re

from streamlit.testing.v1 import AppTest

from frontend.auth_state import AuthState
from frontend.session import AUTH_KEY
from frontend.session_cookie import HANDOFFS, ROUTE_PATH
from tests.frontend.harness import new_user, submit
from tests.support import DEFAULT_PASSWORD


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
