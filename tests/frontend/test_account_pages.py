"""Login history, Sessions, API keys and Account pages against a real API server."""

from __future__ import annotations

import pytest
from streamlit.testing.v1 import AppTest

from frontend.auth.state import Tokens
from tests.frontend.harness import (
    api_login,
    menu,
    new_user,
    open_page,
    submit,
    texts,
)
from tests.support.accounts import DEFAULT_PASSWORD, bearer
from tests.support.servers import LiveClient


@pytest.fixture
def account(api_url: str) -> tuple[str, Tokens]:
    return new_user(api_url, "acct")


def test_login_history_lists_attempts_and_filters(
    app: AppTest, api_url: str, account: tuple[str, Tokens]
) -> None:
    username, tokens = account
    LiveClient(api_url).post("/auth/login", json={"username": username, "password": "Bad!pass1"})
    open_page(app, api_url, tokens, "views/login_history.py")
    assert not app.exception
    (table,) = app.dataframe
    assert sorted(table.value["Result"]) == ["✅ Success", "❌ Failed"]
    assert "Wrong username or password" in list(table.value["Reason"])
    assert app.get("vega_lite_chart")

    app.segmented_control(key="history_filter").set_value("Failed").run()
    (table,) = app.dataframe
    assert list(table.value["Result"]) == ["❌ Failed"]


def test_sessions_mark_this_device_and_revoke_another(
    app: AppTest, api_url: str, account: tuple[str, Tokens]
) -> None:
    username, tokens = account
    other = api_login(api_url, username)  # a second device
    open_page(app, api_url, tokens, "views/sessions.py")
    assert not app.exception
    assert texts(app).count("This device") == 1
    revoke_buttons = [b for b in app.button if b.label == "Revoke"]
    assert len(revoke_buttons) == 1
    revoke_buttons[0].click().run()
    assert not [b for b in app.button if b.label == "Revoke"]
    gone = LiveClient(api_url).post("/auth/refresh", json={"refresh_token": other.refresh_token})
    assert gone.status_code == 401


def test_sessions_log_out_here_and_revoke_there_look_different(
    app: AppTest, api_url: str, account: tuple[str, Tokens]
) -> None:
    username, tokens = account
    other = api_login(api_url, username)  # a second device
    open_page(app, api_url, tokens, "views/sessions.py")
    actions = {b.label: b for b in app.button if (b.key or "").startswith("revoke_")}
    assert {label: button.proto.icon for label, button in actions.items()} == {
        "Log out": ":material/logout:",
        "Revoke": ":material/block:",
    }

    actions["Log out"].click().run()
    assert not app.exception
    assert app.title[0].value == "Log in"
    assert not app.info  # a chosen logout opens the login page itself, not "log in to see"
    gone = LiveClient(api_url).post("/auth/refresh", json={"refresh_token": tokens.refresh_token})
    assert gone.status_code == 401
    kept = LiveClient(api_url).post("/auth/refresh", json={"refresh_token": other.refresh_token})
    assert kept.status_code == 200


def test_log_out_everywhere_needs_a_tick_and_ends_every_session(
    app: AppTest, api_url: str, account: tuple[str, Tokens]
) -> None:
    username, tokens = account
    other = api_login(api_url, username)
    open_page(app, api_url, tokens, "views/sessions.py")
    button = next(b for b in app.button if b.label == "Log out everywhere")
    assert button.disabled
    app.checkbox(key="logout_all_confirm").check().run()
    next(b for b in app.button if b.label == "Log out everywhere").click().run()
    assert not app.exception
    assert menu(app) == ["Log in", "Sign up"]
    assert [w.value for w in app.warning] == ["You have been logged out on every device."]
    gone = LiveClient(api_url).post("/auth/refresh", json={"refresh_token": other.refresh_token})
    assert gone.status_code == 401


def test_api_key_is_shown_once_listed_and_revoked(
    app: AppTest, api_url: str, account: tuple[str, Tokens]
) -> None:
    _, tokens = account
    open_page(app, api_url, tokens, "views/api_keys.py")
    assert "No API keys yet" in texts(app)
    app.text_input(key="api_key_name").input("backup script")
    submit(app, "api_key_form", "Create key")
    assert not app.exception
    (code,) = app.code
    key = code.value
    works = LiveClient(api_url).get("/images", headers={"X-API-Key": key})
    assert works.status_code == 200
    (table,) = app.dataframe
    assert list(table.value["Name"]) == ["backup script"]
    assert list(table.value["Status"]) == ["Active"]
    assert key not in table.value.to_string()

    app.button(key="api_key_done").click().run()
    assert not app.code  # shown once: gone after it was acknowledged

    app.selectbox(key="api_key_revoke_choice").select_index(0).run()
    next(b for b in app.button if b.label == "Revoke").click().run()
    (table,) = app.dataframe
    assert list(table.value["Status"]) == ["Revoked"]
    refused = LiveClient(api_url).get("/images", headers={"X-API-Key": key})
    assert refused.status_code == 401


def test_account_changes_the_name(app: AppTest, api_url: str, account: tuple[str, Tokens]) -> None:
    _, tokens = account
    open_page(app, api_url, tokens, "views/account.py")
    app.text_input(key="account_name").input("Renamed Person")
    submit(app, "profile_form", "Save name")
    assert not app.exception
    me = LiveClient(api_url).get("/auth/me", headers=bearer(tokens.access_token)).json()
    assert me["name"] == "Renamed Person"


def change_password(app: AppTest, current: str, new: str, confirm: str | None = None) -> None:
    app.text_input(key="account_current").input(current)
    app.text_input(key="account_new").input(new)
    app.text_input(key="account_confirm").input(new if confirm is None else confirm)
    submit(app, "password_form", "Change password")


def test_account_password_change_and_its_errors(
    app: AppTest, api_url: str, account: tuple[str, Tokens]
) -> None:
    username, tokens = account
    open_page(app, api_url, tokens, "views/account.py")

    change_password(app, "Wrong!pass1", "New!pass123")
    assert [e.value for e in app.error] == ["Current password is incorrect"]

    change_password(app, DEFAULT_PASSWORD, "New!pass123", confirm="Other!pass1")
    assert [e.value for e in app.error] == ["The new passwords do not match."]

    change_password(app, DEFAULT_PASSWORD, "weakweak")
    assert any("uppercase" in m.value for m in app.markdown if m.value.startswith(":red["))

    change_password(app, DEFAULT_PASSWORD, "New!pass123")
    assert not app.exception
    assert app.success
    assert api_login(api_url, username, "New!pass123").access_token


def test_account_logout_returns_to_log_in(
    app: AppTest, api_url: str, account: tuple[str, Tokens]
) -> None:
    _, tokens = account
    open_page(app, api_url, tokens, "views/account.py")
    app.button(key="account_logout").click().run()
    assert menu(app) == ["Log in", "Sign up"]
    assert app.title[0].value == "Log in"
    assert not app.info
    gone = LiveClient(api_url).post("/auth/refresh", json={"refresh_token": tokens.refresh_token})
    assert gone.status_code == 401
