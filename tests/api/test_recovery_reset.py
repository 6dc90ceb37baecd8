"""Password reset by mail, end to end on each backend: a real SMTP server receives the mails,
the links are read out of them and used over HTTP (the app's relay sends after the answer)."""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable
from contextlib import AbstractContextManager
from datetime import timedelta

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select, update

from api.models import AccountToken, AuditEntry, Base, OutboxEvent, User, utcnow
from api.services.password_policy import COMMON_PASSWORD
from tests.api.conftest import DASHBOARD_URL
from tests.support.accounts import (
    ADMIN_USERNAME,
    DEFAULT_PASSWORD,
    admin_settings,
    bearer,
    login,
    login_headers,
    register,
)
from tests.support.databases import app_session
from tests.support.events import app_events_settled
from tests.support.mail import SmtpServer, link_in, text_body

RESET_ANSWER = {
    "detail": "If an account with that email exists, we have sent it a link to reset the password."
}
INVALID_LINK = {"detail": "Invalid or expired reset link"}
NEW_PASSWORD = "N3w!secret-pass"
RESET_SUBJECT = "Reset your Pixelgate password"
RESET = "password_reset"
CHANGED_SUBJECT = "password was changed"
SMTP_SERVER_LOGGER = "mail.log"

MakeClient = Callable[..., AbstractContextManager[TestClient]]


def _email(username: str) -> str:
    return f"{username}@example.com"


def _request_reset(client: TestClient, email: str, **kwargs: object) -> None:
    response = client.post("/auth/password-reset/request", json={"email": email}, **kwargs)  # type: ignore[arg-type]
    assert response.status_code == 202, response.text
    assert response.json() == RESET_ANSWER


def _reset_token(smtp: SmtpServer, username: str, count: int = 1) -> str:
    """The token of the `count`-th reset mail to the account."""
    return link_in(smtp.wait_for_mail(_email(username), RESET_SUBJECT, count))[1]


def _confirm(client: TestClient, token: str, password: str = NEW_PASSWORD):  # type: ignore[no-untyped-def]
    return client.post(
        "/auth/password-reset/confirm", json={"token": token, "new_password": password}
    )


def test_reset_by_mail_sets_the_password_and_logs_out_everywhere(
    mail_client: TestClient, smtp: SmtpServer
) -> None:
    account = register(mail_client, "reset_001")
    second = login(mail_client, "reset_001").json()
    # A Host header of the attacker's choosing changes nothing in the link.
    _request_reset(mail_client, _email("reset_001"), headers={"Host": "evil.example"})

    mail = smtp.wait_for_mail(_email("reset_001"), RESET_SUBJECT)
    link, token = link_in(mail)
    assert link == f"{DASHBOARD_URL}/reset-password?token={token}"
    assert len(token) >= 43  # 32 random bytes, URL-safe base64
    assert "evil.example" not in text_body(mail)
    with app_session(mail_client) as db:
        stored = db.scalars(select(AccountToken).where(AccountToken.purpose == RESET)).one()
        assert stored.token_hash == hashlib.sha256(token.encode()).hexdigest()

    confirmed = _confirm(mail_client, token)
    assert confirmed.status_code == 204
    assert confirmed.content == b""
    assert "set-cookie" not in confirmed.headers  # no tokens: log in afresh

    for tokens in (account["tokens"], second):
        assert (
            mail_client.get("/auth/me", headers=bearer(tokens["access_token"])).status_code == 401
        )
        refreshed = mail_client.post(
            "/auth/refresh", json={"refresh_token": tokens["refresh_token"]}
        )
        assert refreshed.status_code == 401
    assert login(mail_client, "reset_001").status_code == 401
    assert login(mail_client, "reset_001", NEW_PASSWORD).status_code == 200

    notice = smtp.wait_for_mail(_email("reset_001"), CHANGED_SUBJECT)
    assert "Reset it" in text_body(notice)
    assert NEW_PASSWORD not in text_body(notice)


def _row_counts(client: TestClient) -> dict[str, int]:
    with app_session(client) as db:
        return {
            table.name: db.scalar(select(func.count()).select_from(table)) or 0
            for table in Base.metadata.sorted_tables
        }


def test_an_unknown_address_gets_the_same_answer_and_the_same_work(
    mail_client: TestClient, smtp: SmtpServer
) -> None:
    """Same status, body and work on the request path (one outbox row each, nothing else):
    what differs, making a link and mailing it, happens after the answer."""
    register(mail_client, "reset_002")
    app_events_settled(mail_client)
    for address in (_email("reset_002"), "nobody@example.com", "RESET_002@Example.com"):
        before = _row_counts(mail_client)
        _request_reset(mail_client, address)
        after = _row_counts(mail_client)
        changed = {t: after[t] - before[t] for t in after if after[t] != before[t]}
        # account_tokens may already have the link if the relay was quick: it writes after.
        changed.pop("account_tokens", None)
        changed.pop("handled_events", None)
        assert changed == {"event_outbox": 1}, address
    app_events_settled(mail_client)
    assert [
        m["To"].addresses[0].addr_spec for m in smtp.messages if RESET_SUBJECT in m["Subject"]
    ] == [
        _email("reset_002"),
        _email("reset_002"),
    ]
    with app_session(mail_client) as db:
        data = [
            row.data
            for row in db.scalars(
                select(OutboxEvent).where(OutboxEvent.type == "user.password_reset_requested")
            )
        ]
    assert {"user_id": None, "requested_by": None} in data


def test_a_link_works_once(mail_client: TestClient, smtp: SmtpServer) -> None:
    register(mail_client, "reset_003")
    _request_reset(mail_client, _email("reset_003"))
    token = _reset_token(smtp, "reset_003")
    assert _confirm(mail_client, token).status_code == 204
    again = _confirm(mail_client, token, "An0ther!password")
    assert again.status_code == 400
    assert again.json() == INVALID_LINK
    assert login(mail_client, "reset_003", NEW_PASSWORD).status_code == 200


def test_an_expired_link_is_refused(mail_client: TestClient, smtp: SmtpServer) -> None:
    register(mail_client, "reset_004")
    _request_reset(mail_client, _email("reset_004"))
    token = _reset_token(smtp, "reset_004")
    with app_session(mail_client) as db:
        link = db.scalars(select(AccountToken).where(AccountToken.purpose == RESET)).one()
        # PASSWORD_RESET_EXPIRE_MINUTES after it was made.
        assert timedelta(minutes=29) < link.expires_at - link.created_at <= timedelta(minutes=30)
        db.execute(update(AccountToken).values(expires_at=utcnow() - timedelta(seconds=1)))
        db.commit()
    refused = _confirm(mail_client, token)
    assert (refused.status_code, refused.json()) == (400, INVALID_LINK)
    assert login(mail_client, "reset_004").status_code == 200


def test_a_newer_link_voids_the_older_one(mail_client: TestClient, smtp: SmtpServer) -> None:
    register(mail_client, "reset_005")
    _request_reset(mail_client, _email("reset_005"))
    older = _reset_token(smtp, "reset_005", 1)
    _request_reset(mail_client, _email("reset_005"))
    newer = _reset_token(smtp, "reset_005", 2)
    assert older != newer
    assert _confirm(mail_client, older).json() == INVALID_LINK
    assert _confirm(mail_client, newer).status_code == 204


def test_a_password_change_voids_every_outstanding_link(
    mail_client: TestClient, smtp: SmtpServer
) -> None:
    account = register(mail_client, "reset_006")
    _request_reset(mail_client, _email("reset_006"))
    token = _reset_token(smtp, "reset_006")
    changed = mail_client.post(
        "/auth/change-password",
        json={"current_password": DEFAULT_PASSWORD, "new_password": NEW_PASSWORD},
        headers=account["headers"],
    )
    assert changed.status_code == 204
    assert _confirm(mail_client, token, "An0ther!password").json() == INVALID_LINK
    assert login(mail_client, "reset_006", NEW_PASSWORD).status_code == 200
    smtp.wait_for_mail(_email("reset_006"), CHANGED_SUBJECT)


@pytest.mark.parametrize("token", ["", "x" * 513])
def test_malformed_tokens_are_422(mail_client: TestClient, token: str) -> None:
    assert _confirm(mail_client, token).status_code == 422


def test_unknown_tokens_and_verification_links_are_not_reset_links(
    mail_client: TestClient, smtp: SmtpServer
) -> None:
    register(mail_client, "reset_008")
    verification = link_in(smtp.wait_for_mail(_email("reset_008"), "Confirm your email"))[1]
    for token in ("not-a-token", "A" * 43, verification):
        refused = _confirm(mail_client, token)
        assert (refused.status_code, refused.json()) == (400, INVALID_LINK)
    assert login(mail_client, "reset_008").status_code == 200


def test_the_new_password_must_meet_the_policy_and_the_link_survives_a_refusal(
    mail_client: TestClient, smtp: SmtpServer
) -> None:
    register(mail_client, "reset_009")
    _request_reset(mail_client, _email("reset_009"))
    token = _reset_token(smtp, "reset_009")
    for password, rule in (
        ("short", "at least 8 characters"),
        ("P@ssw0rd", COMMON_PASSWORD),
        ("reset_009", "at least one uppercase letter"),
        ("Reset_009@example.com", "same as the username or email"),
    ):
        refused = _confirm(mail_client, token, password)
        assert refused.status_code == 422, password
        (error,) = refused.json()["detail"]
        assert error["loc"] == ["body", "new_password"]
        assert rule in error["msg"]
    assert _confirm(mail_client, token).status_code == 204


def test_at_most_reset_emails_per_hour_links_are_mailed_and_older_ones_stay_valid(
    make_mail_client: MakeClient, smtp: SmtpServer
) -> None:
    with make_mail_client(reset_emails_per_hour=3, **admin_settings()) as client:
        member_id = register(client, "reset_010")["user"]["id"]
        admin = login_headers(client, ADMIN_USERNAME)
        sent = client.post(f"/users/{member_id}/password-reset", headers=admin)
        assert sent.status_code == 202
        for _ in range(4):
            _request_reset(client, _email("reset_010"))
        app_events_settled(client)

        mails = [m for m in smtp.mails_to(_email("reset_010")) if RESET_SUBJECT in m["Subject"]]
        assert len(mails) == 3  # the admin's counts too
        last = link_in(mails[-1])[1]
        with app_session(client) as db:
            made = select(func.count()).select_from(AccountToken)
            assert db.scalar(made.where(AccountToken.purpose == RESET)) == 3
        # The refused requests changed nothing: the last link mailed still works.
        assert _confirm(client, last).status_code == 204


def test_the_per_address_limit_answers_429_for_known_and_unknown_addresses(
    make_mail_client: MakeClient,
) -> None:
    with make_mail_client(rate_limit_enabled=True, password_reset_rate_limit="2/hour") as client:
        register(client, "reset_011")
        _request_reset(client, _email("reset_011"))
        _request_reset(client, "nobody@example.com")
        for address in (_email("reset_011"), "nobody@example.com"):
            limited = client.post("/auth/password-reset/request", json={"email": address})
            assert limited.status_code == 429
            assert int(limited.headers["Retry-After"]) > 0
            assert "password reset requests" in limited.json()["detail"]


def test_not_an_email_is_422(mail_client: TestClient) -> None:
    for body in ({"email": "not-an-email"}, {}, {"email": None}):
        assert mail_client.post("/auth/password-reset/request", json=body).status_code == 422


def test_an_admin_sends_a_reset_link_and_it_is_audited(
    make_mail_client: MakeClient, smtp: SmtpServer
) -> None:
    with make_mail_client(**admin_settings()) as client:
        member = register(client, "reset_012")
        admin = login_headers(client, ADMIN_USERNAME)
        user_id = member["user"]["id"]
        assert (
            client.post(f"/users/{user_id}/password-reset", headers=member["headers"]).status_code
            == 403
        )
        assert client.post("/users/999999/password-reset", headers=admin).status_code == 404

        sent = client.post(f"/users/{user_id}/password-reset", headers=admin)
        assert sent.status_code == 202
        assert "reset link" in sent.json()["detail"]
        token = _reset_token(smtp, "reset_012")
        assert _confirm(client, token).status_code == 204
        with app_session(client) as db:
            entry = db.scalars(
                select(AuditEntry).where(AuditEntry.action == "password_reset_sent")
            ).one()
            assert (entry.target_type, entry.target_id) == ("user", user_id)
            assert token not in str(entry.details)
        log = client.get("/admin/audit-log?action=password_reset_sent", headers=admin).json()
        assert log["total"] == 1


def test_a_deactivated_account_gets_no_link(make_mail_client: MakeClient, smtp: SmtpServer) -> None:
    with make_mail_client(**admin_settings()) as client:
        user_id = register(client, "reset_013")["user"]["id"]
        admin = login_headers(client, ADMIN_USERNAME)
        assert (
            client.patch(f"/users/{user_id}", json={"is_active": False}, headers=admin).status_code
            == 200
        )
        _request_reset(client, _email("reset_013"))
        assert client.post(f"/users/{user_id}/password-reset", headers=admin).status_code == 202
        app_events_settled(client)
        assert not [m for m in smtp.mails_to(_email("reset_013")) if RESET_SUBJECT in m["Subject"]]


def test_no_token_or_link_appears_in_any_log_line(
    mail_client: TestClient, smtp: SmtpServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    register(mail_client, "reset_014")
    _request_reset(mail_client, _email("reset_014"))
    reset_token = _reset_token(smtp, "reset_014")
    verify_token = link_in(smtp.wait_for_mail(_email("reset_014"), "Confirm your email"))[1]
    assert _confirm(mail_client, reset_token).status_code == 204
    smtp.wait_for_mail(_email("reset_014"), CHANGED_SUBJECT)
    app_events_settled(mail_client)

    # Every logger but the test's own SMTP server (aiosmtpd logs the mails it receives).
    records = [r for r in caplog.records if r.name != SMTP_SERVER_LOGGER]
    assert any(r.name.startswith("pixelgate.") for r in records)
    logged = "\n".join(f"{r.getMessage()} {r.args!r} {r.exc_text or ''}" for r in records)
    for secret in (reset_token, verify_token, NEW_PASSWORD):
        assert secret not in logged
    with app_session(mail_client) as db:
        events = " ".join(str(row.data) for row in db.scalars(select(OutboxEvent)))
        hashes = " ".join(db.scalars(select(AccountToken.token_hash)))
        user = db.scalars(select(User).where(User.username == "reset_014")).one()
    for secret in (reset_token, verify_token):
        assert secret not in events
        assert secret not in hashes
    assert user.password_changed_at is not None
