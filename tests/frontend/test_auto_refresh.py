"""The transparent refresh, against a real API server: an expired access token costs one
refresh and no visible error; a refused refresh sends the user to log in with a message."""

from __future__ import annotations

import threading
from dataclasses import replace

import pytest
from streamlit.testing.v1 import AppTest

from frontend.api_client import ApiClient, SessionExpired
from frontend.auth.state import SESSION_EXPIRED, AuthState
from tests.frontend.harness import (
    logged_in,
    menu,
    new_user,
    texts,
    with_expired_access_token,
)
from tests.support.accounts import bearer
from tests.support.servers import LiveClient


def test_an_expired_access_token_is_refreshed_once_and_the_page_loads(
    app: AppTest, api_url: str
) -> None:
    _, tokens = new_user(api_url, "refresh")
    auth = logged_in(app, api_url, with_expired_access_token(api_url, tokens))

    app.switch_page("views/sessions.py").run()

    assert not app.exception
    assert app.title[0].value == "Sessions"
    assert "This device" in texts(app)  # the data the page needed came back
    assert auth.tokens is not None
    assert auth.tokens.refresh_token != tokens.refresh_token  # rotated, and stored
    assert auth.tokens.access_token != tokens.access_token
    # The new pair is a working one of the same session (not a new login).
    answer = LiveClient(api_url).get("/auth/sessions", headers=bearer(auth.tokens.access_token))
    assert answer.status_code == 200
    assert len(answer.json()) == 1


def test_a_revoked_session_shows_the_login_page_with_the_expiry_message(
    app: AppTest, api_url: str
) -> None:
    _, tokens = new_user(api_url, "revoked")
    auth = logged_in(app, api_url, with_expired_access_token(api_url, tokens))
    answer = LiveClient(api_url).post("/auth/logout", json={"refresh_token": tokens.refresh_token})
    assert answer.status_code == 204

    app.switch_page("views/sessions.py").run()

    assert not app.exception
    assert not auth.logged_in
    assert menu(app) == ["Log in", "Sign up"]
    assert app.title[0].value == "Log in"
    assert [w.value for w in app.warning] == [SESSION_EXPIRED]
    assert SESSION_EXPIRED == "Your session has expired. Please log in again."


def test_two_runs_meeting_an_expired_token_rotate_it_only_once(api_url: str) -> None:
    """Both wait on the session's lock; the second reuses the first one's new pair. (Rotating
    the same refresh token twice would be reuse: the API would revoke the whole session.)"""
    _, tokens = new_user(api_url, "racing")
    auth = AuthState()
    auth.store(with_expired_access_token(api_url, tokens))
    client = ApiClient(auth, base_url=api_url)
    refreshes: list[int] = []
    client._http.hooks["response"].append(
        lambda response, **_: (
            refreshes.append(1) if response.url.endswith("/auth/refresh") else None
        )
    )
    results: list[object] = []
    start = threading.Barrier(4)

    def load() -> None:
        start.wait()
        try:
            results.append(client.sessions())
        except SessionExpired as error:
            results.append(error)

    threads = [threading.Thread(target=load) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert all(isinstance(result, list) and len(result) == 1 for result in results), results
    assert len(refreshes) == 1
    assert auth.logged_in
    # And the session is still alive under the stored pair.
    assert client.load_user()["username"].startswith("racing")


def test_a_refused_refresh_forgets_the_login(api_url: str) -> None:
    _, tokens = new_user(api_url, "gone")
    auth = AuthState()
    auth.store(replace(tokens, access_token="not-a-token"))
    client = ApiClient(auth, base_url=api_url)
    LiveClient(api_url).post("/auth/logout", json={"refresh_token": tokens.refresh_token})
    with pytest.raises(SessionExpired):
        client.sessions()
    assert not auth.logged_in
    assert auth.notice == SESSION_EXPIRED
