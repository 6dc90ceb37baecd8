"""Email verification by mail, end to end on each backend, and REQUIRE_VERIFIED_EMAIL."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from datetime import timedelta

from fastapi.testclient import TestClient
from sqlalchemy import select, update

from api.models import AccountToken, OutboxEvent, utcnow
from tests.api.conftest import DASHBOARD_URL
from tests.support.accounts import (
    ADMIN_USERNAME,
    DEFAULT_PASSWORD,
    admin_settings,
    login,
    login_headers,
    register,
    signup,
)
from tests.support.databases import app_session
from tests.support.events import app_events_settled
from tests.support.mail import SmtpServer, link_in

VERIFY_SUBJECT = "Confirm your email address"
INVALID_LINK = {"detail": "Invalid or expired verification link"}

MakeClient = Callable[..., AbstractContextManager[TestClient]]


def _email(username: str) -> str:
    return f"{username}@example.com"


def _verification_token(smtp: SmtpServer, username: str, count: int = 1) -> str:
    link, token = link_in(smtp.wait_for_mail(_email(username), VERIFY_SUBJECT, count))
    assert link == f"{DASHBOARD_URL}/verify-email?token={token}"
    return token


def _confirm(client: TestClient, token: str):  # type: ignore[no-untyped-def]
    return client.post("/auth/verify-email/confirm", json={"token": token})


def test_sign_up_mails_a_link_that_verifies_the_address_once(
    mail_client: TestClient, smtp: SmtpServer
) -> None:
    account = register(mail_client, "verify_01")
    assert account["user"]["is_verified"] is False
    token = _verification_token(smtp, "verify_01")

    confirmed = _confirm(mail_client, token)
    assert confirmed.status_code == 200
    assert confirmed.json()["username"] == "verify_01"
    assert confirmed.json()["is_verified"] is True
    assert mail_client.get("/auth/me", headers=account["headers"]).json()["is_verified"] is True
    with app_session(mail_client) as db:
        types = db.scalars(select(OutboxEvent.type).order_by(OutboxEvent.id)).all()
    assert "user.email_verified" in types

    again = _confirm(mail_client, token)
    assert (again.status_code, again.json()) == (400, INVALID_LINK)


def test_asking_again_mails_a_new_link_and_voids_the_older(
    mail_client: TestClient, smtp: SmtpServer
) -> None:
    account = register(mail_client, "verify_02")
    older = _verification_token(smtp, "verify_02")
    assert mail_client.post("/auth/verify-email/request").status_code == 401
    asked = mail_client.post("/auth/verify-email/request", headers=account["headers"])
    assert asked.status_code == 202
    assert "verification link" in asked.json()["detail"]
    newer = _verification_token(smtp, "verify_02", 2)
    assert newer != older
    assert _confirm(mail_client, older).json() == INVALID_LINK
    assert _confirm(mail_client, newer).status_code == 200


def test_a_verified_address_is_409(mail_client: TestClient, smtp: SmtpServer) -> None:
    account = register(mail_client, "verify_03")
    assert _confirm(mail_client, _verification_token(smtp, "verify_03")).status_code == 200
    refused = mail_client.post("/auth/verify-email/request", headers=account["headers"])
    assert refused.status_code == 409
    assert refused.json() == {"detail": "Email address is already verified"}


def test_an_expired_link_is_refused(mail_client: TestClient, smtp: SmtpServer) -> None:
    register(mail_client, "verify_04")
    token = _verification_token(smtp, "verify_04")
    with app_session(mail_client) as db:
        link = db.scalars(
            select(AccountToken).where(AccountToken.purpose == "email_verification")
        ).one()
        assert timedelta(hours=47) < link.expires_at - link.created_at <= timedelta(hours=48)
        db.execute(update(AccountToken).values(expires_at=utcnow() - timedelta(seconds=1)))
        db.commit()
    assert _confirm(mail_client, token).json() == INVALID_LINK


def test_unknown_tokens_and_reset_links_do_not_verify(
    mail_client: TestClient, smtp: SmtpServer
) -> None:
    register(mail_client, "verify_05")
    response = mail_client.post("/auth/password-reset/request", json={"email": _email("verify_05")})
    assert response.status_code == 202
    reset = link_in(smtp.wait_for_mail(_email("verify_05"), "Reset your"))[1]
    for token in ("nonsense", "B" * 43, reset):
        refused = _confirm(mail_client, token)
        assert (refused.status_code, refused.json()) == (400, INVALID_LINK)
    assert _confirm(mail_client, "").status_code == 422


def test_verification_requests_are_limited_per_address_apart_from_reset_requests(
    make_mail_client: MakeClient,
) -> None:
    with make_mail_client(rate_limit_enabled=True, password_reset_rate_limit="2/hour") as client:
        account = register(client, "verify_06")
        for _ in range(2):
            assert (
                client.post("/auth/verify-email/request", headers=account["headers"]).status_code
                == 202
            )
        limited = client.post("/auth/verify-email/request", headers=account["headers"])
        assert limited.status_code == 429
        assert int(limited.headers["Retry-After"]) > 0
        reset = client.post("/auth/password-reset/request", json={"email": _email("verify_06")})
        assert reset.status_code == 202


def test_require_verified_email_refuses_login_after_the_password_check(
    make_mail_client: MakeClient, smtp: SmtpServer
) -> None:
    with make_mail_client(require_verified_email=True) as client:
        assert signup(client, "verify_07").status_code == 201
        wrong = login(client, "verify_07", "Wr0ng!password")
        assert wrong.status_code == 401
        refused = login(client, "verify_07")
        assert refused.status_code == 403
        assert refused.json() == {"detail": "Email address not verified"}
        form = client.post(
            "/auth/token", data={"username": "verify_07", "password": DEFAULT_PASSWORD}
        )
        assert form.status_code == 403
        assert "set-cookie" not in refused.headers

        assert _confirm(client, _verification_token(smtp, "verify_07")).status_code == 200
        headers = login_headers(client, "verify_07")
        history = client.get("/auth/login-history", headers=headers).json()["items"]
        reasons = [item["failure_reason"] for item in reversed(history)]
        assert reasons == ["bad_credentials", "unverified", "unverified", None]


def test_the_first_admin_is_verified_and_gets_no_verification_mail(
    make_mail_client: MakeClient, smtp: SmtpServer
) -> None:
    with make_mail_client(require_verified_email=True, **admin_settings()) as client:
        headers = login_headers(client, ADMIN_USERNAME)
        assert client.get("/auth/me", headers=headers).json()["is_verified"] is True
        register_mail = signup(client, "verify_08")
        assert register_mail.status_code == 201
        _verification_token(smtp, "verify_08")
        app_events_settled(client)
        assert smtp.mails_to(_email(ADMIN_USERNAME)) == []


def test_a_deactivated_accounts_link_does_not_verify(
    make_mail_client: MakeClient, smtp: SmtpServer
) -> None:
    with make_mail_client(**admin_settings()) as client:
        user_id = register(client, "verify_09")["user"]["id"]
        token = _verification_token(smtp, "verify_09")
        admin = login_headers(client, ADMIN_USERNAME)
        assert (
            client.patch(f"/users/{user_id}", json={"is_active": False}, headers=admin).status_code
            == 200
        )
        assert _confirm(client, token).json() == INVALID_LINK
