"""One-time links under concurrent requests against a real uvicorn that mails to a real SMTP
server, on each backend: N confirms of one link, exactly one wins; a burst of reset requests
mails at most RESET_EMAILS_PER_HOUR links."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from api.core.db import Database
from tests.support.accounts import DEFAULT_PASSWORD, login, register
from tests.support.concurrency import all_at_once
from tests.support.events import wait_for_events_settled
from tests.support.mail import SmtpServer, link_in
from tests.support.servers import LiveClient, api_env, api_server

CONCURRENT = 12


@pytest.fixture
def live(database_url: str, tmp_path: Path, smtp: SmtpServer) -> Iterator[str]:
    env = api_env(
        database_url,
        tmp_path / "images",
        MAIL_BACKEND="smtp",
        SMTP_HOST=smtp.host,
        SMTP_PORT=str(smtp.port),
        SMTP_STARTTLS="false",
        PUBLIC_DASHBOARD_URL="http://dashboard.test",
        RESET_EMAILS_PER_HOUR="3",
        EVENTS_POLL_INTERVAL_S="0.2",
    )
    with api_server(env, tmp_path / "server.log") as url:
        yield url


def test_concurrent_confirms_of_one_reset_link_let_exactly_one_through(
    live: str, smtp: SmtpServer
) -> None:
    register(LiveClient(live), "race_r01")
    reset = LiveClient(live).post(
        "/auth/password-reset/request", json={"email": "race_r01@example.com"}
    )
    assert reset.status_code == 202
    token = link_in(smtp.wait_for_mail("race_r01@example.com", "Reset your"))[1]

    passwords = [f"Rac3!winner-{n:02d}" for n in range(CONCURRENT)]
    responses = all_at_once(
        [
            lambda p=p: LiveClient(live).post(
                "/auth/password-reset/confirm", json={"token": token, "new_password": p}
            )
            for p in passwords
        ]
    )
    statuses = [r.status_code for r in responses]
    assert sorted(statuses) == [204] + [400] * (CONCURRENT - 1)
    winner = passwords[statuses.index(204)]
    assert login(LiveClient(live), "race_r01", winner).status_code == 200
    assert login(LiveClient(live), "race_r01", DEFAULT_PASSWORD).status_code == 401
    # A few of the others (more wrong passwords would lock the account out).
    for loser in [p for p in passwords if p != winner][:3]:
        assert login(LiveClient(live), "race_r01", loser).status_code == 401


def test_concurrent_confirms_of_one_verification_link_verify_once(
    live: str, smtp: SmtpServer
) -> None:
    register(LiveClient(live), "race_v01")
    token = link_in(smtp.wait_for_mail("race_v01@example.com", "Confirm your email"))[1]
    responses = all_at_once(
        [
            lambda: LiveClient(live).post("/auth/verify-email/confirm", json={"token": token})
            for _ in range(CONCURRENT)
        ]
    )
    assert sorted(r.status_code for r in responses) == [200] + [400] * (CONCURRENT - 1)


def test_a_burst_of_reset_requests_mails_at_most_the_hourly_limit(
    live: str, smtp: SmtpServer, database_url: str
) -> None:
    register(LiveClient(live), "race_b01")
    responses = all_at_once(
        [
            lambda: LiveClient(live).post(
                "/auth/password-reset/request", json={"email": "race_b01@example.com"}
            )
            for _ in range(CONCURRENT)
        ]
    )
    assert {r.status_code for r in responses} == {202}
    database = Database(database_url)
    try:
        wait_for_events_settled(database)
    finally:
        database.dispose()
    mails = [m for m in smtp.mails_to("race_b01@example.com") if "Reset your" in str(m["Subject"])]
    assert len(mails) == 3
