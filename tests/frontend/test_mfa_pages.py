"""Two-factor authentication in the dashboard, against a real API server: the login's code
step, enrolment and management on the Account page, the admin's reset."""

from __future__ import annotations

from typing import Any

from jose import jwt
from streamlit.testing.v1 import AppTest

from frontend.auth.state import Tokens
from tests.frontend.conftest import ADMIN_USERNAME
from tests.frontend.harness import (
    api_login,
    menu,
    new_user,
    open_page,
    submit,
    texts,
)
from tests.frontend.test_auth_pages import LOGGED_OUT_MENU, MEMBER_MENU, fill_login
from tests.support.accounts import DEFAULT_PASSWORD, bearer
from tests.support.mfa import enable_mfa, totp_code, wrong_totp_code
from tests.support.servers import LiveClient


def _enrolled_user(api_url: str, prefix: str) -> tuple[str, dict[str, Any]]:
    username, tokens = new_user(api_url, prefix)
    return username, enable_mfa(LiveClient(api_url), bearer(tokens.access_token))


def _enter_code(app: AppTest, code: str) -> AppTest:
    app.text_input(key="mfa_code").input(code)
    return submit(app, "mfa_form", "Verify")


def test_login_asks_for_the_code_after_the_password(app: AppTest, api_url: str) -> None:
    username, enrolled = _enrolled_user(api_url, "mfalogin")
    app.run()
    fill_login(app, username, DEFAULT_PASSWORD)
    assert not app.exception
    assert menu(app) == LOGGED_OUT_MENU
    assert "Two-factor authentication" in [s.value for s in app.subheader]

    _enter_code(app, wrong_totp_code(enrolled["secret"]))
    assert [e.value for e in app.error] == ["Invalid two-factor code"]
    assert menu(app) == LOGGED_OUT_MENU

    _enter_code(app, totp_code(enrolled["secret"], 1))
    assert not app.exception
    assert menu(app) == MEMBER_MENU
    assert app.title[0].value.startswith("Hello")


def test_login_with_a_recovery_code(app: AppTest, api_url: str) -> None:
    username, enrolled = _enrolled_user(api_url, "mfarecov")
    app.run()
    fill_login(app, username, DEFAULT_PASSWORD, remember=True)
    _enter_code(app, enrolled["recovery_codes"][0])
    assert menu(app) == MEMBER_MENU
    # Remember me was asked for at the password step and holds for the second.
    assert app.session_state["auth"].remember is True


def test_back_to_log_in_and_a_refused_challenge_start_over(app: AppTest, api_url: str) -> None:
    username, enrolled = _enrolled_user(api_url, "mfaback")
    app.run()
    fill_login(app, username, DEFAULT_PASSWORD)
    app.button(key="mfa_back").click().run()
    assert app.text_input(key="login_username") is not None
    assert "Two-factor authentication" not in [s.value for s in app.subheader]

    fill_login(app, username, DEFAULT_PASSWORD)
    for _ in range(5):
        _enter_code(app, wrong_totp_code(enrolled["secret"]))
    _enter_code(app, totp_code(enrolled["secret"], 1))
    # Five wrong codes: this login is refused for good, and the password form says why.
    assert menu(app) == LOGGED_OUT_MENU
    assert "Too many wrong codes for this login" in texts(app)
    assert "Two-factor authentication" not in [s.value for s in app.subheader]


def test_enrol_from_the_account_page_and_see_the_codes_once(app: AppTest, api_url: str) -> None:
    username, tokens = new_user(api_url, "mfaenrol")
    open_page(app, api_url, tokens, "views/account.py")
    assert not app.exception
    app.button(key="mfa_start").click().run()
    assert not app.exception
    assert app.get("image"), "the QR code is shown"
    secret = next(c.value for c in app.code if len(c.value) == 32)

    app.text_input(key="mfa_enable_code").input(wrong_totp_code(secret))
    submit(app, "mfa_enable_form", "Turn on")
    assert [e.value for e in app.error] == ["Invalid two-factor code"]

    app.text_input(key="mfa_enable_code").input(totp_code(secret))
    submit(app, "mfa_enable_form", "Turn on")
    assert not app.exception
    codes = next(c.value for c in app.code if "-" in c.value).split("\n")
    assert len(codes) == 10
    assert app.get("download_button")
    # The dashboard's tokens already say that this session proved a code.
    access_token = app.session_state["auth"].tokens.access_token
    assert jwt.get_unverified_claims(access_token)["amr"] == ["pwd", "otp"]
    assert "10 recovery codes left" in texts(app)

    app.button(key="mfa_codes_saved").click().run()
    assert not [c for c in app.code if "-" in c.value]
    status = LiveClient(api_url).get("/auth/mfa", headers=bearer(tokens.access_token)).json()
    assert status["enabled"] is True

    # A recovery code from the page logs in.
    login = AppTest.from_file(app._script_path, default_timeout=app.default_timeout)
    login.run()
    fill_login(login, username, DEFAULT_PASSWORD)
    _enter_code(login, codes[0])
    assert menu(login) == MEMBER_MENU


def test_regenerate_codes_and_turn_off_from_the_account_page(app: AppTest, api_url: str) -> None:
    _, tokens = new_user(api_url, "mfamanage")
    enrolled = enable_mfa(LiveClient(api_url), bearer(tokens.access_token))
    open_page(app, api_url, tokens, "views/account.py")
    assert "10 recovery codes left" in texts(app)

    app.text_input(key="mfa_regenerate_code").input(enrolled["recovery_codes"][0])
    submit(app, "mfa_regenerate_form", "Make new codes")
    assert not app.exception
    new_codes = next(c.value for c in app.code if "-" in c.value).split("\n")
    assert len(new_codes) == 10
    assert not set(new_codes) & set(enrolled["recovery_codes"])

    app.text_input(key="mfa_disable_password").input("Wrong!pass1")
    app.text_input(key="mfa_disable_code").input(new_codes[0])
    submit(app, "mfa_disable_form", "Turn off")
    assert [e.value for e in app.error] == ["Password is incorrect"]

    app.text_input(key="mfa_disable_password").input(DEFAULT_PASSWORD)
    app.text_input(key="mfa_disable_code").input(new_codes[0])
    submit(app, "mfa_disable_form", "Turn off")
    assert not app.exception
    assert app.button(key="mfa_start") is not None
    status = LiveClient(api_url).get("/auth/mfa", headers=bearer(tokens.access_token)).json()
    assert status["enabled"] is False


def test_an_admin_sees_and_resets_a_users_2fa(app: AppTest, api_url: str) -> None:
    username, _ = _enrolled_user(api_url, "mfareset")
    admin: Tokens = api_login(api_url, ADMIN_USERNAME)
    open_page(app, api_url, admin, "views/admin_users.py")
    app.text_input(key="admin_q").input(username).run()
    (table,) = app.dataframe
    assert list(table.value["2FA"]) == [True]

    assert app.button(key="admin_reset_mfa").disabled
    user_id = next(
        u["id"]
        for u in LiveClient(api_url)
        .get("/users", params={"q": username}, headers=bearer(admin.access_token))
        .json()["items"]
    )
    app.checkbox(key=f"admin_mfa_confirm_{user_id}").check().run()
    app.button(key="admin_reset_mfa").click().run()
    assert not app.exception
    (table,) = app.dataframe
    assert list(table.value["2FA"]) == [False]
    plain = LiveClient(api_url).post(
        "/auth/login", json={"username": username, "password": DEFAULT_PASSWORD}
    )
    assert "access_token" in plain.json()
