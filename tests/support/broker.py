"""RabbitMQ for tests: a fresh vhost per test session, a clean event topology per test, and a
TCP proxy that can play a broker that goes down and comes back."""

from __future__ import annotations

import os
import selectors
import shutil
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

import pika
import pika.exceptions
from amqp.exceptions import ChannelError
from kombu import Connection as KombuConnection

from api.events import broker
from tests.support.paths import REPO_ROOT

RABBITMQ_SERVER_URL = os.environ.get("TEST_RABBITMQ_URL", "amqp://guest:guest@127.0.0.1:5672")
REQUIRE_RABBITMQ = os.environ.get("PIXELGATE_REQUIRE_RABBITMQ") == "1"
RABBITMQ_USER = "guest"


def rabbitmq_reachable(server_url: str = RABBITMQ_SERVER_URL) -> bool:
    try:
        broker.connect(f"{server_url}/%2F").close()
    except (pika.exceptions.AMQPError, OSError):
        return False
    return True


def _rabbitmqctl(*arguments: str) -> None:
    command = shutil.which("rabbitmqctl") or "/usr/sbin/rabbitmqctl"
    subprocess.run([command, "-q", *arguments], check=True, capture_output=True, timeout=60)


@contextmanager
def fresh_rabbitmq_vhost(server_url: str = RABBITMQ_SERVER_URL) -> Iterator[str]:
    """A new vhost that `guest` may use; yields its amqp URL and deletes it afterwards."""
    name = f"pixelgate_test_{uuid.uuid4().hex[:12]}"
    _rabbitmqctl("add_vhost", name)
    try:
        _rabbitmqctl("set_permissions", "-p", name, RABBITMQ_USER, ".*", ".*", ".*")
        yield f"{server_url}/{name}"
    finally:
        _rabbitmqctl("delete_vhost", name)


def reset_event_topology(url: str, retry_delays_s: Iterable[float] = ()) -> None:
    """Deletes the events exchanges and queues, so that a test starts with none."""
    connection = broker.connect(url)
    try:
        channel = connection.channel()
        queues = [broker.QUEUE, broker.DEAD_LETTER_QUEUE]
        queues += [broker.retry_queue_name(delay) for delay in retry_delays_s]
        for queue in queues:
            channel.queue_delete(queue)
        for exchange in (broker.EXCHANGE, broker.DEAD_LETTER_EXCHANGE):
            channel.exchange_delete(exchange)
    finally:
        connection.close()


class TcpProxy:
    """Forwards a local port to the broker; `down()` drops every connection and refuses new
    ones (a broker outage, as the API sees it), `up()` serves again on the same port."""

    def __init__(self, target_host: str, target_port: int) -> None:
        self._target = (target_host, target_port)
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port: int = self._listener.getsockname()[1]
        self._listener.close()
        self._lock = threading.Lock()
        self._sockets: set[socket.socket] = set()
        self._serving: threading.Event | None = None

    def up(self) -> None:
        listener = socket.create_server(("127.0.0.1", self.port), reuse_port=False)
        serving = threading.Event()
        serving.set()
        self._serving = serving
        threading.Thread(target=self._accept, args=(listener, serving), daemon=True).start()

    def down(self) -> None:
        if self._serving is not None:
            self._serving.clear()
        with self._lock:
            sockets, self._sockets = self._sockets, set()
        for sock in sockets:
            _close(sock)
        # Accepting stops within the listener's timeout; wait for the port to be free.
        for _ in range(100):
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.1).close()
            except OSError:
                return
            threading.Event().wait(0.05)

    def _accept(self, listener: socket.socket, serving: threading.Event) -> None:
        listener.settimeout(0.05)
        with listener:
            while serving.is_set():
                try:
                    client, _ = listener.accept()
                except TimeoutError:
                    continue
                try:
                    upstream = socket.create_connection(self._target, timeout=5)
                except OSError:
                    _close(client)
                    continue
                with self._lock:
                    self._sockets.update((client, upstream))
                threading.Thread(target=self._pipe, args=(client, upstream), daemon=True).start()

    def _pipe(self, client: socket.socket, upstream: socket.socket) -> None:
        selector = selectors.DefaultSelector()
        selector.register(client, selectors.EVENT_READ, upstream)
        selector.register(upstream, selectors.EVENT_READ, client)
        try:
            while True:
                for key, _ in selector.select(timeout=0.5):
                    data = key.fileobj.recv(65536)  # type: ignore[union-attr]
                    if not data:
                        return
                    key.data.sendall(data)
        except (OSError, ValueError):
            return
        finally:
            selector.close()
            _close(client)
            _close(upstream)


def _close(sock: socket.socket) -> None:
    with suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)
    sock.close()


class EventTap:
    """A queue of the test's own bound to the events exchange: sees every published message,
    as another system subscribing to our events would."""

    def __init__(self, url: str) -> None:
        self._connection = broker.connect(url)
        self._channel = self._connection.channel()
        broker.declare_delivery(self._channel)
        self.queue = self._channel.queue_declare("", exclusive=True).method.queue
        self._channel.queue_bind(self.queue, broker.EXCHANGE, routing_key="#")

    def take(self, count: int, timeout: float = 30.0) -> list[tuple[Any, Any, bytes]]:
        """The next `count` messages as (method, properties, body); fewer on timeout."""
        messages: list[tuple[Any, Any, bytes]] = []
        deadline = time.monotonic() + timeout
        while len(messages) < count and time.monotonic() < deadline:
            method, properties, body = self._channel.basic_get(self.queue, auto_ack=True)
            if method is None:
                self._connection.sleep(0.05)
                continue
            messages.append((method, properties, body))
        return messages

    def left(self) -> int:
        """How many more messages arrive within a second (0 when nothing was published twice)."""
        self._connection.sleep(1.0)
        return len(self.take(10_000, timeout=0.5))

    def close(self) -> None:
        self._connection.close()


def queue_depth(url: str, queue: str) -> int:
    connection = broker.connect(url)
    try:
        declared = connection.channel().queue_declare(queue, passive=True)
        return declared.method.message_count
    finally:
        connection.close()


@contextmanager
def consumer_process(env: dict[str, str], log_path: Path) -> Iterator[subprocess.Popen[bytes]]:
    """`python -m api.consumer` with `env`, once its healthcheck says it consumes; stopped with
    SIGTERM afterwards (it must exit 0)."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "api.consumer"],
            env=env,
            cwd=REPO_ROOT,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            deadline = time.monotonic() + 60
            while not consumer_is_healthy(env):
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"the consumer did not start: {log_path.read_text()}")
                time.sleep(0.1)
            yield process
            process.terminate()
            assert process.wait(timeout=30) == 0, log_path.read_text()
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()


def consumer_is_healthy(env: dict[str, str]) -> bool:
    """The container healthcheck, `python -m api.consumer --check`."""
    check = subprocess.run(
        [sys.executable, "-m", "api.consumer", "--check"], env=env, cwd=REPO_ROOT, timeout=60
    )
    return check.returncode == 0


def purge_queue(broker_url: str, queue: str) -> None:
    """Drops every message waiting in `queue` (if it exists yet)."""
    with KombuConnection(broker_url, connect_timeout=5) as connection:
        channel = connection.channel()
        with suppress(ChannelError):  # not declared yet: nothing to drop
            channel.queue_purge(queue)
