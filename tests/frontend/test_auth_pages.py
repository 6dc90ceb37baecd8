"""Log in, sign up and the navigation, through the real script against a real API server."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from frontend.api_client import ApiClient
from frontend.auth.session import AUTH_KEY, CLIENT_KEY
from frontend.auth.state import AuthState
from tests.frontend.conftest import ADMIN_USERNAME
from tests.frontend.harness import (
    api_login,
    logged_in,
    menu,
    new_user,
    stand_ins,
    submit,
    texts,
    unique_name,
)
from tests.support.accounts import DEFAULT_PASSWORD, bearer, signup
from tests.support.databases import migrate
from tests.support.servers import LiveClient, api_env, api_server

LOGGED_OUT_MENU = ["Log in", "Sign up"]
MEMBER_MENU = ["Dashboard", "Images", "Jobs", "Login history", "Sessions", "API keys", "Account"]
ADMIN_MENU = [*MEMBER_MENU, "Users", "All logins", "Statistics", "Events"]
SESSIONS_INTRO = "Every device where you are logged in."


def fill_login(app: AppTest, username: str, password: str, remember: bool = False) -> AppTest:
    app.text_input(key="login_username").input(username)
    app.text_input(key="login_password").input(password)
    if remember:
        app.checkbox(key="login_remember").check()
    return submit(app, "login_form", "Log in")


def test_a_visitor_sees_only_log_in_and_sign_up(app: AppTest) -> None:
    app.run()
    assert not app.exception
    assert menu(app) == LOGGED_OUT_MENU
    assert app.title[0].value == "Log in"
    # Every other page answers at its address, but only as a stand-in.
    assert stand_ins(app) == ADMIN_MENU


def test_a_page_that_needs_a_login_asks_for_it_and_then_shows_it(
    app: AppTest, api_url: str
) -> None:
    username, tokens = new_user(api_url, "byurl")
    auth = logged_in(app, api_url, tokens)
    app.switch_page("views/sessions.py").run()
    assert app.title[0].value == "Sessions"

    auth.clear()  # the same address, now without a login: the page's script does not run
    app.run()
    assert not app.exception
    assert app.title[0].value == "Log in"
    assert [info.value for info in app.info] == ["Log in to see **Sessions**."]
    assert SESSIONS_INTRO not in texts(app)
    assert menu(app) == LOGGED_OUT_MENU

    fill_login(app, username, DEFAULT_PASSWORD)
    assert not app.exception
    assert app.title[0].value == "Sessions"
    assert SESSIONS_INTRO in texts(app)
    assert menu(app) == MEMBER_MENU


def test_a_logged_in_visitor_at_the_sign_up_address_is_taken_home(
    app: AppTest, api_url: str
) -> None:
    app.run()
    app.switch_page("views/signup.py").run()
    assert app.title[0].value == "Create your account"
    _, tokens = new_user(api_url, "home")
    app.session_state[AUTH_KEY].store(tokens)  # logged in, e.g. in another tab
    app.run()
    assert not app.exception
    assert app.title[0].value.startswith("Hello")


def test_members_and_admins_get_their_menus(app: AppTest, api_url: str) -> None:
    _, member = new_user(api_url, "menu")
    logged_in(app, api_url, member)
    app.run()
    assert menu(app) == MEMBER_MENU

    admin = AppTest.from_file(app._script_path, default_timeout=app.default_timeout)
    logged_in(admin, api_url, api_login(api_url, ADMIN_USERNAME))
    admin.run()
    assert menu(admin) == ADMIN_MENU


def test_an_admin_page_never_runs_for_a_member(app: AppTest, api_url: str) -> None:
    auth = logged_in(app, api_url, api_login(api_url, ADMIN_USERNAME))
    app.switch_page("views/admin_users.py").run()
    assert app.title[0].value == "Users"

    _, member = new_user(api_url, "notadmin")
    auth.store(member)  # same browser session, now a member's tokens
    app.run()
    assert not app.exception
    assert not app.title
    assert [info.value for info in app.info] == ["**Users** is for administrators."]
    assert menu(app) == MEMBER_MENU


def test_login_success_shows_the_dashboard_and_menu(app: AppTest, api_url: str) -> None:
    username = unique_name("login_ok")
    signup(LiveClient(api_url), username)
    app.run()
    fill_login(app, username, DEFAULT_PASSWORD)
    assert not app.exception
    assert menu(app) == MEMBER_MENU
    assert app.title[0].value.startswith("Hello")
    assert app.session_state[AUTH_KEY].user["username"] == username


def test_login_with_email_works_too(app: AppTest, api_url: str) -> None:
    username = unique_name("by_email")
    signup(LiveClient(api_url), username)
    app.run()
    fill_login(app, f"{username}@example.com", DEFAULT_PASSWORD)
    assert app.session_state[AUTH_KEY].logged_in


def test_wrong_password_says_so(app: AppTest, api_url: str) -> None:
    username = unique_name("wrong_pw")
    signup(LiveClient(api_url), username)
    app.run()
    fill_login(app, username, "Wrong!pass1")
    assert [e.value for e in app.error] == ["Invalid username or password"]
    assert menu(app) == LOGGED_OUT_MENU


def test_unknown_user_gets_the_same_message(app: AppTest) -> None:
    app.run()
    fill_login(app, "nobody_here", DEFAULT_PASSWORD)
    assert [e.value for e in app.error] == ["Invalid username or password"]


def test_empty_fields_are_caught_before_asking_the_server(app: AppTest) -> None:
    app.run()
    submit(app, "login_form", "Log in")
    assert [e.value for e in app.error] == ["Enter your username (or email) and your password."]


def test_deactivated_account_is_told_so(app: AppTest, api_url: str) -> None:
    username, tokens = new_user(api_url, "inactive")
    me = LiveClient(api_url).get("/auth/me", headers=bearer(tokens.access_token)).json()
    admin = api_login(api_url, ADMIN_USERNAME)
    answer = LiveClient(api_url).patch(
        f"/users/{me['id']}", json={"is_active": False}, headers=bearer(admin.access_token)
    )
    assert answer.status_code == 200, answer.text
    app.run()
    fill_login(app, username, DEFAULT_PASSWORD)
    assert [e.value for e in app.error] == ["This account is deactivated"]


def test_lockout_says_when_to_try_again(app: AppTest, api_url: str) -> None:
    username = unique_name("locked")
    signup(LiveClient(api_url), username)
    for _ in range(5):
        LiveClient(api_url).post("/auth/login", json={"username": username, "password": "x"})
    app.run()
    fill_login(app, username, DEFAULT_PASSWORD)
    (error,) = app.error
    assert "Too many failed logins for this account; try again in" in error.value
    assert "seconds" in error.value


@pytest.fixture(scope="module")
def rate_limited_api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A second API server, with a login rate limit of 2 per minute."""
    workdir: Path = tmp_path_factory.mktemp("rate-limited-api")
    database_url = f"sqlite:///{workdir / 'app.db'}"
    migrate(database_url)
    env = api_env(
        database_url, workdir / "images", RATE_LIMIT_ENABLED="true", LOGIN_RATE_LIMIT="2/minute"
    )
    with api_server(env, workdir / "api.log") as base_url:
        yield base_url


def test_rate_limit_says_when_to_try_again(app: AppTest, rate_limited_api: str) -> None:
    auth = AuthState()
    app.session_state[AUTH_KEY] = auth
    app.session_state[CLIENT_KEY] = ApiClient(auth, base_url=rate_limited_api)
    app.run()
    for _ in range(2):
        fill_login(app, "someone", "Wrong!pass1")
    fill_login(app, "someone", "Wrong!pass1")
    (error,) = app.error
    assert "Too many login attempts from this address; try again in" in error.value


def test_the_api_being_down_is_a_friendly_message(app: AppTest) -> None:
    auth = AuthState()
    app.session_state[AUTH_KEY] = auth
    app.session_state[CLIENT_KEY] = ApiClient(auth, base_url="http://127.0.0.1:9")
    app.run()
    fill_login(app, "someone", DEFAULT_PASSWORD)
    assert not app.exception
    assert [e.value for e in app.error] == [
        "Cannot reach the Pixelgate server right now. Please try again in a moment."
    ]


# -- sign up -------------------------------------------------------------------------------


def fill_signup(app: AppTest, **overrides: object) -> AppTest:
    username = overrides.pop("username", unique_name("new"))
    values: dict[str, object] = {
        "username": username,
        "email": f"{username}@example.com",
        "name": "New Person",
        "password": DEFAULT_PASSWORD,
        "password_confirm": DEFAULT_PASSWORD,
        "agree_terms": True,
    }
    values.update(overrides)
    for field in ("username", "email", "name", "password", "password_confirm"):
        app.text_input(key=f"signup_{field}").input(str(values[field]))
    app.checkbox(key="signup_agree_terms").set_value(bool(values["agree_terms"]))
    return submit(app, "signup_form", "Sign up")


@pytest.fixture
def signup_page(app: AppTest) -> AppTest:
    app.run()
    return app.switch_page("views/signup.py").run()


def field_messages(app: AppTest) -> list[str]:
    """The red per-field messages under the sign-up fields."""
    return [m.value for m in app.markdown if m.value.startswith(":red[")]


def test_signup_shows_the_password_policy_the_api_publishes(
    signup_page: AppTest, api_url: str
) -> None:
    (policy,) = signup_page.info
    rules = LiveClient(api_url).get("/auth/password-policy").json()["rules"]
    assert "not a commonly used password" in rules
    for rule in rules:
        assert f"- {rule}" in policy.value
    assert "4–20 letters, digits or underscores" in policy.value


def test_signup_success_leads_to_log_in_with_the_name_filled_in(signup_page: AppTest) -> None:
    username = unique_name("fresh")
    fill_signup(signup_page, username=username)
    assert not signup_page.exception
    assert signup_page.title[0].value == "Log in"
    assert [s.value for s in signup_page.success] == [
        f"Account {username} created. We mailed a link to confirm your address; log in below."
    ]
    assert signup_page.text_input(key="login_username").value == username


@pytest.mark.parametrize(
    ("overrides", "field_message"),
    [
        ({"password": "weakpass1!", "password_confirm": "weakpass1!"}, "uppercase letter"),
        ({"password": "Sh0rt!", "password_confirm": "Sh0rt!"}, "at least 8 characters"),
        ({"password_confirm": "Other!pass9"}, "match"),
        ({"agree_terms": False}, "terms"),
        ({"username": "no"}, "at least 4 characters"),
        ({"email": "not-an-email"}, "email"),
    ],
)
def test_signup_shows_the_servers_message_under_the_field(
    signup_page: AppTest, overrides: dict[str, object], field_message: str
) -> None:
    fill_signup(signup_page, **overrides)
    assert not signup_page.exception
    messages = field_messages(signup_page)
    assert len(messages) == 1, messages
    assert field_message in messages[0].lower()
    assert signup_page.title[0].value == "Create your account"


def test_signup_with_a_taken_username_names_it(signup_page: AppTest, api_url: str) -> None:
    taken = unique_name("taken")
    signup(LiveClient(api_url), taken)
    fill_signup(signup_page, username=taken, email=f"other_{taken}@example.com")
    (error,) = signup_page.error
    assert "username" in error.value.lower()


def test_a_logged_in_page_with_the_api_down_says_so_without_a_traceback(
    app: AppTest, api_url: str
) -> None:
    _, tokens = new_user(api_url, "offline")
    auth = logged_in(app, api_url, tokens)
    app.session_state[CLIENT_KEY] = ApiClient(auth, base_url="http://127.0.0.1:9")
    app.run()
    assert not app.exception
    assert [e.value for e in app.error] == [
        "Cannot reach the Pixelgate server right now. Please try again in a moment."
    ]
    assert [b.label for b in app.button] == ["Try again"]
    assert auth.logged_in  # nothing is lost: the next run continues when the API is back
    app.session_state[CLIENT_KEY] = ApiClient(auth, base_url=api_url)
    app.button(key="retry_api").click().run()
    assert app.title[0].value.startswith("Hello")
