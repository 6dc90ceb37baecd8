"""The two-factor notices: each 2FA change's event mails the account's address (through a real
SMTP server), naming no code or secret."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from api.events.context import HandlerContext
from api.events.dispatch import run_handlers
from api.models import OutboxEvent
from api.schemas.event import Event
from api.services.event_handlers import build_handler_registry
from tests.support.accounts import (
    ADMIN_USERNAME,
    DEFAULT_PASSWORD,
    AccountFactory,
    admin_settings,
    login_headers,
)
from tests.support.databases import app_session
from tests.support.mail import SmtpServer, html_body, smtp_server, text_body
from tests.support.mfa import enable_mfa, totp_code


@pytest.fixture
def smtp() -> Iterator[SmtpServer]:
    with smtp_server() as server:
        yield server


def _deliver_events(client: TestClient) -> None:
    """Runs the handlers of every recorded event, as the relay does once they committed."""
    state = client.app.state
    context = HandlerContext(state.settings, state.database, state.storage, state.mailer)
    registry = build_handler_registry()
    with app_session(client) as db:
        rows = db.scalars(select(OutboxEvent).order_by(OutboxEvent.id)).all()
    for row in rows:
        event = Event(id=row.event_id, type=row.type, occurred_at=row.occurred_at, data=row.data)
        run_handlers(event, registry, context)


def test_every_two_factor_change_is_mailed_to_the_account(
    make_client: Callable[..., AbstractContextManager[TestClient]],
    accounts: AccountFactory,
    smtp: SmtpServer,
) -> None:
    with make_client(**admin_settings(), **smtp.settings()) as client:
        member = accounts.logged_in(client, "notice_1")
        enrolled = enable_mfa(client, member.headers)
        regenerated = client.post(
            "/auth/mfa/recovery-codes",
            json={"code": totp_code(enrolled["secret"], 1)},
            headers=member.headers,
        )
        assert regenerated.status_code == 200
        new_codes = regenerated.json()["recovery_codes"]
        disabled = client.post(
            "/auth/mfa/disable",
            json={"password": DEFAULT_PASSWORD, "code": new_codes[0]},
            headers=member.headers,
        )
        assert disabled.status_code == 204
        enable_mfa(client, member.headers)
        admin = login_headers(client, ADMIN_USERNAME)
        assert client.delete(f"/users/{member.user.id}/mfa", headers=admin).status_code == 204

        _deliver_events(client)
        _deliver_events(client)  # a redelivery sends nothing twice

    mails = smtp.mails_to(member.user.email)
    assert [str(m["Subject"]) for m in mails] == [
        "Two-factor authentication is now on for your Pixelgate account",
        "New two-factor recovery codes were made for your Pixelgate account",
        "Two-factor authentication was turned off on your account",
        "Two-factor authentication is now on for your Pixelgate account",
        "An administrator removed two-factor authentication from your account",
    ]
    secrets = [enrolled["secret"], *enrolled["recovery_codes"], *new_codes]
    for mail in mails:
        text, html = text_body(mail), html_body(mail)
        assert "notice_1" in text
        assert not [secret for secret in secrets if secret in text or secret in html]
    assert smtp.mails_to(f"{ADMIN_USERNAME}@example.com") == []


def test_no_notice_for_a_deleted_account(
    make_client: Callable[..., AbstractContextManager[TestClient]],
    accounts: AccountFactory,
    smtp: SmtpServer,
) -> None:
    with make_client(**smtp.settings()) as client:
        member = accounts.logged_in(client, "notice_2")
        enable_mfa(client, member.headers)
        assert client.delete(f"/users/{member.user.id}", headers=member.headers).status_code == 204
        _deliver_events(client)
    assert smtp.mails_to(member.user.email) == []
