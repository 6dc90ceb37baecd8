"""Fixtures of the event tests: the run's RabbitMQ vhost, and a clean topology per test."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.broker import (
    REQUIRE_RABBITMQ,
    fresh_rabbitmq_vhost,
    rabbitmq_reachable,
    reset_event_topology,
)

# Short enough for a test to see every retry, distinct from the defaults.
TEST_RETRY_DELAYS_S = [0.3, 0.6]


@pytest.fixture(scope="session")
def rabbitmq_vhost_url() -> Iterator[str]:
    """A vhost of the local RabbitMQ for this test session; skips when RabbitMQ is not
    reachable (fails when PIXELGATE_REQUIRE_RABBITMQ=1)."""
    if not rabbitmq_reachable():
        if REQUIRE_RABBITMQ:
            pytest.fail("RabbitMQ is required but not reachable")
        pytest.skip("RabbitMQ is not reachable")
    with fresh_rabbitmq_vhost() as url:
        yield url


@pytest.fixture
def broker_url(rabbitmq_vhost_url: str) -> str:
    """The session's vhost with no events exchange or queue left by an earlier test."""
    reset_event_topology(rabbitmq_vhost_url, TEST_RETRY_DELAYS_S)
    return rabbitmq_vhost_url
