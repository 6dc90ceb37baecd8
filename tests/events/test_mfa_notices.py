"""The two-factor notices: each 2FA change's event mails the account's address (through a real
SMTP server), naming no code or secret."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager

import pytest
from fastapi.testclient import TestClient

from api.events.context import HandlerContext
from api.events.dispatch import run_handlers
from api.events.outbox import event_of
from api.models import utcnow
from api.schemas.event import Event, EventType
from api.services.event_handlers import build_handler_registry
from api.services.mfa_notices import mail_mfa_notice
from tests.support.accounts import (
    ADMIN_USERNAME,
    DEFAULT_PASSWORD,
    AccountFactory,
    admin_settings,
    login_headers,
)
from tests.support.events import app_events_settled
from tests.support.mail import SmtpServer, html_body, smtp_server, text_body
from tests.support.mfa import enable_mfa, totp_code


@pytest.fixture
def smtp() -> Iterator[SmtpServer]:
    with smtp_server() as server:
        yield server


def _handle_again(client: TestClient) -> None:
    """Delivers every event once more, as after a crash between handling and recording it."""
    state = client.app.state
    context = HandlerContext(state.settings, state.database, state.storage, state.mailer)
    registry = build_handler_registry()
    for row in app_events_settled(client):
        run_handlers(event_of(row), registry, context)


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

        app_events_settled(client)  # the relay handled them
        _handle_again(client)  # and a redelivery sends nothing twice

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


def test_no_notice_for_an_account_deleted_before_its_event_was_handled(
    make_client: Callable[..., AbstractContextManager[TestClient]],
    accounts: AccountFactory,
    smtp: SmtpServer,
) -> None:
    with make_client(**smtp.settings()) as client:
        member = accounts.logged_in(client, "notice_2")
        assert client.delete(f"/users/{member.user.id}", headers=member.headers).status_code == 204
        app_events_settled(client)
        state = client.app.state
        context = HandlerContext(state.settings, state.database, state.storage, state.mailer)
        late = Event(
            id=uuid.uuid4(),
            type=EventType.USER_MFA_ENABLED,
            occurred_at=utcnow(),
            data={"user_id": member.user.id},
        )
        mail_mfa_notice(late, context)
    assert smtp.mails_to(member.user.email) == []
