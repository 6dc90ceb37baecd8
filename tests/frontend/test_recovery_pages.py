"""Forgot password, reset and verification pages, the unverified banner and the admin's
"send reset link", through the real script against a real API server whose mails (file
backend) the tests read the links from."""

from __future__ import annotations

from streamlit.testing.v1 import AppTest

from tests.frontend.conftest import ADMIN_USERNAME
from tests.frontend.harness import (
    api_login,
    logged_in,
    menu,
    new_user,
    open_page,
    registered_pages,
    submit,
    texts,
    unique_name,
)
from tests.support.accounts import DEFAULT_PASSWORD, bearer, signup
from tests.support.mail import OutboxFolder, link_in
from tests.support.servers import LiveClient

NEW_PASSWORD = "Br4nd!new-pass"
LINK_PAGES = ["Forgot password", "Reset password", "Verify email"]


def _email(username: str) -> str:
    return f"{username}@example.com"


def _reset_token(api_url: str, outbox: OutboxFolder, username: str, count: int = 1) -> str:
    answer = LiveClient(api_url).post(
        "/auth/password-reset/request", json={"email": _email(username)}
    )
    assert answer.status_code == 202
    return link_in(outbox.wait_for_mail(_email(username), "Reset your", count))[1]


def _verification_token(outbox: OutboxFolder, username: str, count: int = 1) -> str:
    return link_in(outbox.wait_for_mail(_email(username), "Confirm your email", count))[1]


def _logged_out_page(app: AppTest, page: str, **query: str) -> AppTest:
    app.query_params.update(query)
    app.run()
    return app.switch_page(page).run()


def _fill_reset(app: AppTest, password: str, repeated: str | None = None) -> AppTest:
    app.text_input(key="reset_new").input(password)
    app.text_input(key="reset_repeat").input(password if repeated is None else repeated)
    return submit(app, "reset_form", "Set new password")


def test_the_link_pages_are_reachable_logged_in_or_out_but_not_in_the_menu(
    app: AppTest, api_url: str
) -> None:
    app.run()
    assert set(LINK_PAGES) <= set(registered_pages(app))
    assert not set(LINK_PAGES) & set(menu(app))
    assert "Forgot password?" in [link.label for link in app.page_link]

    _, tokens = new_user(api_url, "linkpages")
    member = AppTest.from_file(app._script_path, default_timeout=app.default_timeout)
    logged_in(member, api_url, tokens)
    member.run()
    assert set(LINK_PAGES) <= set(registered_pages(member))


def test_forgot_password_answers_the_same_for_any_address(
    app: AppTest, api_url: str, mail_outbox: OutboxFolder
) -> None:
    username, _ = new_user(api_url, "forgot")
    page = _logged_out_page(app, "views/forgot_password.py")
    assert page.title[0].value == "Forgot your password?"
    answers = []
    for address in (_email(username), "nobody-at-all@example.com"):
        page.text_input(key="forgot_email").input(address)
        page = submit(page, "forgot_form", "Send me a reset link")
        assert not page.exception
        answers.append([s.value for s in page.success])
    assert answers[0] == answers[1]
    assert "If an account with that email exists" in answers[0][0]
    assert link_in(mail_outbox.wait_for_mail(_email(username), "Reset your"))[1]


def test_reset_page_shows_the_policy_sets_the_password_and_drops_the_token(
    app: AppTest, api_url: str, mail_outbox: OutboxFolder
) -> None:
    username, tokens = new_user(api_url, "resetpage")
    token = _reset_token(api_url, mail_outbox, username)
    page = _logged_out_page(app, "views/reset_password.py", token=token)
    assert page.title[0].value == "Choose a new password"
    rules = LiveClient(api_url).get("/auth/password-policy").json()["rules"]
    assert all(f"- {rule}" in page.info[0].value for rule in rules)

    page = _fill_reset(page, NEW_PASSWORD, "Something!else1")
    assert "do not match" in texts(page)
    page = _fill_reset(page, "P@ssw0rd")
    assert ":red[:material/error: Password is too common" in texts(page)
    assert page.query_params["token"] == token  # a refusal by the policy keeps the link

    page = _fill_reset(page, NEW_PASSWORD)
    assert not page.exception
    assert [s.value for s in page.success] == ["Your new password is set."]
    assert "Log in with your new password" in [link.label for link in page.page_link]
    assert "token" not in page.query_params
    assert api_login(api_url, username, NEW_PASSWORD).access_token
    revoked = LiveClient(api_url).get("/auth/me", headers=bearer(tokens.access_token))
    assert revoked.status_code == 401


def test_a_used_link_says_so_and_offers_a_new_one(
    app: AppTest, api_url: str, mail_outbox: OutboxFolder
) -> None:
    username, _ = new_user(api_url, "usedlink")
    token = _reset_token(api_url, mail_outbox, username)
    used = LiveClient(api_url).post(
        "/auth/password-reset/confirm", json={"token": token, "new_password": NEW_PASSWORD}
    )
    assert used.status_code == 204
    page = _fill_reset(_logged_out_page(app, "views/reset_password.py", token=token), "An0ther!pw")
    assert "Invalid or expired reset link" in texts(page)
    assert "Get a new link" in [link.label for link in page.page_link]
    assert "token" not in page.query_params


def test_the_reset_page_without_a_token_points_to_forgot_password(app: AppTest) -> None:
    page = _logged_out_page(app, "views/reset_password.py")
    assert "link from your password reset mail" in texts(page)
    assert not page.text_input


def test_a_logged_in_reset_ends_this_login_too(
    app: AppTest, api_url: str, mail_outbox: OutboxFolder
) -> None:
    username, tokens = new_user(api_url, "resetin")
    token = _reset_token(api_url, mail_outbox, username)
    page = _fill_reset(
        open_page(app, api_url, tokens, "views/reset_password.py", token=token), NEW_PASSWORD
    )
    assert not page.exception
    assert page.title[0].value == "Log in"
    assert "log in with it" in texts(page)


def test_verify_page_confirms_with_a_click_and_the_banner_goes(
    app: AppTest, api_url: str, mail_outbox: OutboxFolder
) -> None:
    username, tokens = new_user(api_url, "verifypage")
    token = _verification_token(mail_outbox, username)
    page = open_page(app, api_url, tokens, "views/dashboard.py")
    assert "is not verified yet" in texts(page)

    page.query_params["token"] = token
    page = page.switch_page("views/verify_email.py").run()
    assert "is not verified yet" not in texts(page)  # not on the page that verifies
    page = page.button(key="verify_confirm").click().run()
    assert not page.exception
    assert [s.value for s in page.success] == [f"{_email(username)} is confirmed. Thank you!"]
    assert "token" not in page.query_params
    me = LiveClient(api_url).get("/auth/me", headers=bearer(tokens.access_token)).json()
    assert me["is_verified"] is True
    page = page.switch_page("views/dashboard.py").run()
    assert "is not verified yet" not in texts(page)


def test_the_banner_resends_a_link(app: AppTest, api_url: str, mail_outbox: OutboxFolder) -> None:
    username, tokens = new_user(api_url, "resend")
    first = _verification_token(mail_outbox, username)
    page = open_page(app, api_url, tokens, "views/dashboard.py")
    page = page.button(key="verify_resend").click().run()
    assert not page.exception
    assert "verification link" in " ".join(s.value for s in page.success)
    assert _verification_token(mail_outbox, username, 2) != first


def test_a_refused_verification_link_offers_a_new_one_when_logged_in(
    app: AppTest, api_url: str
) -> None:
    _, tokens = new_user(api_url, "badverify")
    page = open_page(app, api_url, tokens, "views/verify_email.py", token="not-a-real-token")
    page = page.button(key="verify_confirm").click().run()
    assert "Invalid or expired verification link" in texts(page)
    assert page.button(key="verify_resend")


def test_an_admin_sends_a_reset_link_from_the_users_page(
    app: AppTest, api_url: str, mail_outbox: OutboxFolder
) -> None:
    username = unique_name("adminreset")
    assert signup(LiveClient(api_url), username).status_code == 201
    page = open_page(app, api_url, api_login(api_url, ADMIN_USERNAME), "views/admin_users.py")
    page.text_input(key="admin_q").input(username).run()
    page = page.button(key="admin_send_reset").click().run()
    assert not page.exception
    assert [t.value for t in page.toast] == [f"A reset link is on its way to {_email(username)}."]
    token = link_in(mail_outbox.wait_for_mail(_email(username), "Reset your"))[1]
    confirmed = LiveClient(api_url).post(
        "/auth/password-reset/confirm", json={"token": token, "new_password": NEW_PASSWORD}
    )
    assert confirmed.status_code == 204
    assert api_login(api_url, username, NEW_PASSWORD).access_token
    assert api_login(api_url, ADMIN_USERNAME, DEFAULT_PASSWORD).access_token


def test_the_account_page_shows_the_published_password_rules(app: AppTest, api_url: str) -> None:
    _, tokens = new_user(api_url, "acctrules")
    page = open_page(app, api_url, tokens, "views/account.py")
    assert "not a commonly used password" in page.info[0].value
    assert "(not verified yet)" in texts(page)
