"""RabbitMQ for tests: a fresh vhost per test session, a clean event topology per test, and a
TCP proxy that can play a broker that goes down and comes back."""

from __future__ import annotations

import os
import selectors
import socket
import subprocess
import threading
import uuid
from collections.abc import Iterable, Iterator
from contextlib import contextmanager, suppress

import pika
import pika.exceptions

from api.events import broker

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
    subprocess.run(["rabbitmqctl", "-q", *arguments], check=True, capture_output=True, timeout=60)


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
