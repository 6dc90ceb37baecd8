"""Readiness of the parts the API depends on, for `/health`: each probed at once, off the event
loop, and each bounded in time.

Each probe runs in a daemon thread of its own, never in the app's request pool: one that hangs
(a server accepting connections but never answering) is answered as unreachable after
`timeout_s`, and while it still hangs, later checks wait on that same probe instead of starting
another, so a dead part costs at most one thread. Daemon threads never hold up the exit.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit

log = logging.getLogger("pixelgate.health")

OK = "ok"
UNREACHABLE = "unreachable"
_TCP_TIMEOUT_S = 5


@dataclass(frozen=True, slots=True)
class Dependency:
    """`probe` returns True when the part answers; `required` parts make the API unready."""

    name: str
    probe: Callable[[], bool]
    required: bool = True


@dataclass(frozen=True, slots=True)
class Readiness:
    states: dict[str, str]  # name -> "ok" | "unreachable", in the order of the dependencies
    failing_required: list[str]

    @property
    def ready(self) -> bool:
        return not self.failing_required


class ReadinessChecker:
    def __init__(self, dependencies: Sequence[Dependency], timeout_s: float) -> None:
        self.dependencies = tuple(dependencies)
        self.timeout_s = timeout_s
        self._in_flight: dict[str, asyncio.Future[bool]] = {}

    async def check(self) -> Readiness:
        results = await asyncio.gather(*(self._probe(d) for d in self.dependencies))
        probed = list(zip(self.dependencies, results, strict=True))
        states = {d.name: OK if up else UNREACHABLE for d, up in probed}
        return Readiness(states, [d.name for d, up in probed if d.required and not up])

    async def _probe(self, dependency: Dependency) -> bool:
        probe = self._in_flight.get(dependency.name)
        if probe is None or probe.done():
            probe = self._in_flight[dependency.name] = _in_daemon_thread(dependency)
        try:
            return await asyncio.wait_for(asyncio.shield(probe), self.timeout_s)
        except TimeoutError:
            log.warning("%s did not answer within %gs", dependency.name, self.timeout_s)
        except Exception as exc:
            log.warning("%s probe failed: %s", dependency.name, type(exc).__name__)
        return False


def tcp_probe(url: str, default_port: int = 5672) -> Callable[[], bool]:
    """A probe that the host and port of `url` accept a connection (for a broker, whose own
    clients would log a session per probe). Credentials in the URL are never used."""
    parts = urlsplit(url)
    address = (parts.hostname or "localhost", parts.port or default_port)

    def probe() -> bool:
        with socket.create_connection(address, timeout=_TCP_TIMEOUT_S):
            return True

    return probe


def _in_daemon_thread(dependency: Dependency) -> asyncio.Future[bool]:
    loop = asyncio.get_running_loop()
    future: asyncio.Future[bool] = loop.create_future()

    def settle(result: bool | None, error: BaseException | None) -> None:
        if future.done():
            return
        if error is not None:
            future.set_exception(error)
        else:
            future.set_result(bool(result))

    def run() -> None:
        try:
            outcome: tuple[bool | None, BaseException | None] = (dependency.probe(), None)
        except BaseException as exc:
            outcome = (None, exc)
        # A probe that outlived its app's event loop has nobody left to tell.
        with contextlib.suppress(RuntimeError):
            loop.call_soon_threadsafe(settle, *outcome)

    threading.Thread(target=run, name=f"health-{dependency.name}", daemon=True).start()
    return future
