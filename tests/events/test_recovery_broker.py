"""Broker mode: the API only publishes the recovery events; the consumer process
(`python -m api.consumer`) makes the links and mails them to a real SMTP server."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from tests.events.conftest import TEST_RETRY_DELAYS_S
from tests.support.accounts import register
from tests.support.broker import consumer_process
from tests.support.events import wait_for_events_settled
from tests.support.mail import SmtpServer, link_in, smtp_server
from tests.support.servers import api_env

DASHBOARD_URL = "https://dashboard.broker.test"


def test_only_the_consumer_mails_and_its_link_resets_the_password(
    make_client: Callable[..., Any], broker_url: str, tmp_path: Path
) -> None:
    with (
        smtp_server() as smtp,
        make_client(events_broker_url=broker_url, **_mail_to(smtp)) as client,
    ):
        database = client.app.state.database
        settings = client.app.state.settings
        register(client, "broker_r1")
        reset = client.post("/auth/password-reset/request", json={"email": "broker_r1@example.com"})
        assert reset.status_code == 202
        # Published, and the API sends nothing itself in this mode.
        wait_for_events_settled(database, settled=frozenset({"published"}), count=2)
        assert smtp.messages == []

        env = api_env(
            settings.database_url,
            settings.storage_dir,
            EVENTS_BROKER_URL=broker_url,
            EVENTS_RETRY_DELAYS_S=",".join(str(delay) for delay in TEST_RETRY_DELAYS_S),
            EVENTS_CONSUMER_HEARTBEAT_FILE=str(tmp_path / "consumer.alive"),
            MAIL_BACKEND="smtp",
            SMTP_HOST=smtp.host,
            SMTP_PORT=str(smtp.port),
            SMTP_STARTTLS="false",
            PUBLIC_DASHBOARD_URL=DASHBOARD_URL,
        )
        with consumer_process(env, tmp_path / "consumer.log"):
            link, token = link_in(smtp.wait_for_mail("broker_r1@example.com", "Reset your"))
            smtp.wait_for_mail("broker_r1@example.com", "Confirm your email")
            wait_for_events_settled(database, count=2)
        assert link.startswith(f"{DASHBOARD_URL}/reset-password?token=")
        assert token not in (tmp_path / "consumer.log").read_text()

        confirmed = client.post(
            "/auth/password-reset/confirm",
            json={"token": token, "new_password": "Br0ker!passw0rd"},
        )
        assert confirmed.status_code == 204
        login = client.post(
            "/auth/login", json={"username": "broker_r1", "password": "Br0ker!passw0rd"}
        )
        assert login.status_code == 200


def _mail_to(smtp: SmtpServer) -> dict[str, Any]:
    """Mail settings of the API process too: were it to send anything, the test would see it."""
    return {**smtp.settings(), "public_dashboard_url": DASHBOARD_URL}
