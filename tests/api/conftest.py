"""Fixtures of the account-recovery tests: a real SMTP server and apps that mail to it."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.support.mail import SmtpServer, smtp_server

# Links must start with this, whatever Host the request came with.
DASHBOARD_URL = "https://dashboard.pixelgate.test"
# The relay retries a failed handler quickly here (the defaults wait 30 s and more).
FAST_RETRIES = {"events_poll_interval_s": 0.2, "events_retry_delays_s": [0.3, 0.3, 0.3]}


@pytest.fixture
def smtp() -> Iterator[SmtpServer]:
    with smtp_server() as server:
        yield server


@pytest.fixture
def make_mail_client(
    make_client: Callable[..., AbstractContextManager[TestClient]], smtp: SmtpServer
) -> Callable[..., AbstractContextManager[TestClient]]:
    """`with make_mail_client(**overrides) as client:` a started app (its relay running) that
    mails to `smtp`, with links on DASHBOARD_URL."""

    def factory(**overrides: Any) -> AbstractContextManager[TestClient]:
        values: dict[str, Any] = {
            **smtp.settings(),
            "public_dashboard_url": DASHBOARD_URL,
            **FAST_RETRIES,
            **overrides,
        }
        return make_client(**values)

    return factory


@pytest.fixture
def mail_client(
    make_mail_client: Callable[..., AbstractContextManager[TestClient]],
) -> Iterator[TestClient]:
    with make_mail_client() as client:
        yield client
