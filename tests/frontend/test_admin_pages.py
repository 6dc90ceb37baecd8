"""Admin pages (users, everyone's logins, statistics, events) against a real API server."""

from __future__ import annotations

import pytest
from streamlit.testing.v1 import AppTest

from frontend.auth.state import Tokens
from tests.frontend.conftest import ADMIN_USERNAME
from tests.frontend.harness import api_login, new_user, open_page, texts
from tests.support.accounts import bearer
from tests.support.servers import LiveClient


@pytest.fixture
def admin(api_url: str) -> Tokens:
    return api_login(api_url, ADMIN_USERNAME)


def user_named(api_url: str, admin: Tokens, username: str) -> dict:
    answer = LiveClient(api_url).get(
        "/users", params={"q": username}, headers=bearer(admin.access_token)
    )
    (user,) = [u for u in answer.json()["items"] if u["username"] == username]
    return user


def set_role(app: AppTest, user_id: int, role: str) -> None:
    app.radio(key=f"admin_role_{user_id}").set_value(role).run()
    app.button(key="admin_save_role").click().run()


def search(app: AppTest, query: str) -> None:
    app.text_input(key="admin_q").input(query).run()


def test_users_search_and_filters(app: AppTest, api_url: str, admin: Tokens) -> None:
    username, _ = new_user(api_url, "findme")
    open_page(app, api_url, admin, "views/admin_users.py")
    assert not app.exception
    search(app, username)
    (table,) = app.dataframe
    assert list(table.value["Username"]) == [username]

    app.selectbox(key="admin_role").set_value("Admins").run()
    assert "No users match" in texts(app)

    search(app, ADMIN_USERNAME)
    (table,) = app.dataframe
    assert list(table.value["Role"]) == ["admin"]


def test_an_admin_changes_a_role_and_deactivates_and_reactivates(
    app: AppTest, api_url: str, admin: Tokens
) -> None:
    username, member = new_user(api_url, "promote")
    open_page(app, api_url, admin, "views/admin_users.py")
    search(app, username)
    user = user_named(api_url, admin, username)

    set_role(app, user["id"], "admin")
    assert not app.exception
    assert user_named(api_url, admin, username)["role"] == "admin"

    app.button(key="admin_toggle_active").click().run()
    assert user_named(api_url, admin, username)["is_active"] is False
    refused = LiveClient(api_url).get("/auth/me", headers=bearer(member.access_token))
    assert refused.status_code == 401
    assert next(b for b in app.button if b.key == "admin_toggle_active").label == "Reactivate"

    app.button(key="admin_toggle_active").click().run()
    assert user_named(api_url, admin, username)["is_active"] is True

    set_role(app, user["id"], "member")
    assert user_named(api_url, admin, username)["role"] == "member"


def test_demoting_the_last_admin_shows_the_servers_refusal(
    app: AppTest, api_url: str, admin: Tokens
) -> None:
    admins = LiveClient(api_url).get(
        "/users", params={"role": "admin", "is_active": "true"}, headers=bearer(admin.access_token)
    )
    assert admins.json()["total"] == 1  # tests that promote someone demote them again
    open_page(app, api_url, admin, "views/admin_users.py")
    search(app, ADMIN_USERNAME)
    me = user_named(api_url, admin, ADMIN_USERNAME)
    set_role(app, me["id"], "member")
    assert not app.exception
    (error,) = app.error
    assert "admin" in error.value.lower()
    assert user_named(api_url, admin, ADMIN_USERNAME)["role"] == "admin"


def test_everyones_login_history_filters_by_username(
    app: AppTest, api_url: str, admin: Tokens
) -> None:
    username, _ = new_user(api_url, "watched")
    LiveClient(api_url).post("/auth/login", json={"username": username, "password": "Bad!pass1"})
    open_page(app, api_url, admin, "views/admin_logins.py")
    assert not app.exception
    assert app.get("vega_lite_chart")
    app.text_input(key="admin_logins_user").input(username).run()
    (table,) = app.dataframe
    assert set(table.value["Username"]) == {username}
    assert sorted(table.value["Result"]) == ["✅ Success", "❌ Failed"]

    app.segmented_control(key="admin_logins_filter").set_value("Failed").run()
    (table,) = app.dataframe
    assert list(table.value["Result"]) == ["❌ Failed"]


def test_statistics_show_the_figures(app: AppTest, api_url: str, admin: Tokens) -> None:
    new_user(api_url, "counted")
    open_page(app, api_url, admin, "views/admin_stats.py")
    assert not app.exception
    metrics = {metric.label: metric.value for metric in app.metric}
    stats = LiveClient(api_url).get("/admin/stats", headers=bearer(admin.access_token)).json()
    assert metrics["Users"] == str(stats["users"])
    assert metrics["Logins (24 h)"] == str(stats["logins_24h"])
    assert int(metrics["Users"]) >= 2


def test_the_events_page_lists_events_and_filters_by_type_and_state(
    app: AppTest, api_url: str, admin: Tokens
) -> None:
    username, _ = new_user(api_url, "eventful")
    open_page(app, api_url, admin, "views/admin_events.py")
    assert not app.exception
    (table,) = app.dataframe
    assert {"When", "Type", "State", "Attempts", "Last error", "Data"} <= set(table.value.columns)

    app.selectbox(key="admin_events_type").set_value("user.created").run()
    (table,) = app.dataframe
    assert set(table.value["Type"]) == {"user.created"}
    assert any(f'"username": "{username}"' in data for data in table.value["Data"])

    app.segmented_control(key="admin_events_state").set_value("failed").run()
    assert "No events match" in texts(app)
