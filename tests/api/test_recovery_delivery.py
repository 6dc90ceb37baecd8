"""Mail delivery failures: retried with backoff until the SMTP server takes the mail, given
up at ERROR without the link, and the file backend (`.eml` files) used for a whole flow."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from email import policy
from email.parser import BytesParser
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from api.models import AccountToken, EventState, OutboxEvent
from tests.api.conftest import DASHBOARD_URL, FAST_RETRIES
from tests.support.accounts import register
from tests.support.databases import app_session
from tests.support.events import app_events_settled
from tests.support.mail import SmtpServer, link_in, smtp_server
from tests.support.servers import free_port

MakeClient = Callable[..., AbstractContextManager[TestClient]]
RESET_TYPE = "user.password_reset_requested"


def _reset_event(client: TestClient) -> OutboxEvent:
    with app_session(client) as db:
        return db.scalars(select(OutboxEvent).where(OutboxEvent.type == RESET_TYPE)).one()


def _wait_for_reset_event(
    client: TestClient, condition: Callable[[OutboxEvent], bool], timeout: float = 30
) -> OutboxEvent:
    """Polls the reset event until `condition` holds (bounded; not a timing assertion)."""
    deadline = time.monotonic() + timeout
    while not condition(event := _reset_event(client)):
        assert time.monotonic() < deadline, f"never reached: {event.state} {event.attempts}"
        time.sleep(0.05)
    return event


def _request_reset(client: TestClient, email: str) -> None:
    response = client.post("/auth/password-reset/request", json={"email": email})
    assert response.status_code == 202


@pytest.mark.parametrize(
    "reply", ["451 4.3.0 Mailbox busy, try again", "554 5.7.1 Service unavailable"]
)
def test_a_refused_mail_is_retried_and_its_link_works(
    mail_client: TestClient, smtp: SmtpServer, reply: str
) -> None:
    register(mail_client, "deliver_1")
    app_events_settled(mail_client)  # the sign-up's verification mail is out of the way
    smtp.refuse_next(2, reply)
    _request_reset(mail_client, "deliver_1@example.com")

    token = link_in(smtp.wait_for_mail("deliver_1@example.com", "Reset your"))[1]
    app_events_settled(mail_client)
    event = _reset_event(mail_client)
    assert event.state == EventState.HANDLED.value
    assert event.attempts == 2
    assert reply.split()[0] in (event.last_error or "")
    assert token not in (event.last_error or "")
    with app_session(mail_client) as db:
        # Each try remade the same link with a new token: one link, the last token.
        assert (
            len(
                db.scalars(
                    select(AccountToken).where(AccountToken.purpose == "password_reset")
                ).all()
            )
            == 1
        )
    confirmed = mail_client.post(
        "/auth/password-reset/confirm", json={"token": token, "new_password": "Aft3r!retries"}
    )
    assert confirmed.status_code == 204


def test_a_mail_server_that_is_down_then_up_gets_the_mail(make_client: MakeClient) -> None:
    port = free_port()  # nothing listens here yet
    with make_client(
        mail_backend="smtp",
        smtp_host="127.0.0.1",
        smtp_port=port,
        smtp_starttls=False,
        smtp_timeout_s=2,
        public_dashboard_url=DASHBOARD_URL,
        **{**FAST_RETRIES, "events_retry_delays_s": [0.3] * 40},
    ) as client:
        register(client, "deliver_2")
        _request_reset(client, "deliver_2@example.com")
        failed_once = _wait_for_reset_event(client, lambda event: event.attempts >= 1)
        assert "Connection refused" in (failed_once.last_error or "")
        with smtp_server(port=port) as late:
            mail = late.wait_for_mail("deliver_2@example.com", "Reset your")
            token = link_in(mail)[1]
        assert (
            client.post(
                "/auth/password-reset/confirm",
                json={"token": token, "new_password": "Up4gain!later"},
            ).status_code
            == 204
        )


def test_a_mail_that_cannot_be_delivered_is_given_up_at_error_without_its_link(
    mail_client: TestClient, smtp: SmtpServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    register(mail_client, "deliver_3")
    app_events_settled(mail_client)
    smtp.refuse_next(10, "550 5.1.1 Mailbox unavailable")
    _request_reset(mail_client, "deliver_3@example.com")
    app_events_settled(mail_client)

    event = _reset_event(mail_client)
    assert event.state == EventState.FAILED.value
    assert event.attempts == 1 + len(FAST_RETRIES["events_retry_delays_s"])
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert any(str(event.event_id) in r.getMessage() for r in errors)
    records = [r for r in caplog.records if r.name != "mail.log"]  # the test's SMTP server
    logged = "\n".join(r.getMessage() + (r.exc_text or "") for r in records)
    assert "token=" not in logged
    assert DASHBOARD_URL not in logged
    assert smtp.mails_to("deliver_3@example.com")  # the verification mail of sign-up


def test_the_file_backend_writes_eml_files_that_complete_the_flow(
    make_client: MakeClient, tmp_path: Path
) -> None:
    outbox = tmp_path / "mail-out"
    with make_client(
        mail_backend="file",
        mail_outbox_dir=outbox,
        public_dashboard_url=DASHBOARD_URL,
        **FAST_RETRIES,
    ) as client:
        account = register(client, "deliver_4")
        app_events_settled(client)
        (eml,) = outbox.glob("*.eml")
        message = BytesParser(policy=policy.default).parsebytes(eml.read_bytes())
        assert message["To"].addresses[0].addr_spec == "deliver_4@example.com"
        link, token = link_in(message)
        assert link.startswith(f"{DASHBOARD_URL}/verify-email?token=")
        verified = client.post("/auth/verify-email/confirm", json={"token": token})
        assert verified.status_code == 200
        assert client.get("/auth/me", headers=account["headers"]).json()["is_verified"] is True
