"""The local RabbitMQ in tests: a fresh vhost per test run, made and removed with rabbitmqctl."""

from __future__ import annotations

import os
import socket
import subprocess
import uuid
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from urllib.parse import urlsplit

from amqp.exceptions import ChannelError
from kombu import Connection

RABBITMQ_SERVER_URL = os.environ.get("TEST_RABBITMQ_URL", "amqp://guest:guest@127.0.0.1:5672")
RABBITMQCTL_TIMEOUT_S = 60


def rabbitmq_reachable(server_url: str = RABBITMQ_SERVER_URL) -> bool:
    parts = urlsplit(server_url)
    try:
        with socket.create_connection((parts.hostname or "127.0.0.1", parts.port or 5672), 3):
            return True
    except OSError:
        return False


def _rabbitmqctl(*args: str) -> None:
    subprocess.run(
        ["rabbitmqctl", *args], check=True, capture_output=True, timeout=RABBITMQCTL_TIMEOUT_S
    )


@contextmanager
def fresh_vhost(server_url: str = RABBITMQ_SERVER_URL) -> Iterator[str]:
    """A new vhost that the URL's user may use; yields the broker URL naming it, and deletes the
    vhost (with its queues) afterwards."""
    name = f"pixelgate_test_{uuid.uuid4().hex[:12]}"
    user = urlsplit(server_url).username or "guest"
    _rabbitmqctl("add_vhost", name)
    try:
        _rabbitmqctl("set_permissions", "-p", name, user, ".*", ".*", ".*")
        yield f"{server_url.rstrip('/')}/{name}"
    finally:
        _rabbitmqctl("delete_vhost", name)


def purge_queue(broker_url: str, queue: str) -> None:
    """Drops every message waiting in `queue` (if it exists yet)."""
    with Connection(broker_url, connect_timeout=5) as connection:
        channel = connection.channel()
        with suppress(ChannelError):  # not declared yet: nothing to drop
            channel.queue_purge(queue)
