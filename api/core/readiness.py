"""Readiness of the parts the API depends on, for `/health`: each probed at once, off the event
loop, and each bounded in time.

Probes run on a small pool of their own: one that hangs (a server accepting connections but
never answering) holds a probe thread until its client gives up, never a thread of the app's
request pool, and the answer still comes after `timeout_s`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

log = logging.getLogger("pixelgate.health")

OK = "ok"
UNREACHABLE = "unreachable"
_PROBE_THREADS = 4


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
        self._pool = ThreadPoolExecutor(_PROBE_THREADS, thread_name_prefix="health-probe")

    async def check(self) -> Readiness:
        results = await asyncio.gather(*(self._probe(d) for d in self.dependencies))
        probed = list(zip(self.dependencies, results, strict=True))
        states = {d.name: OK if up else UNREACHABLE for d, up in probed}
        return Readiness(states, [d.name for d, up in probed if d.required and not up])

    async def _probe(self, dependency: Dependency) -> bool:
        loop = asyncio.get_running_loop()
        try:
            return bool(
                await asyncio.wait_for(
                    loop.run_in_executor(self._pool, dependency.probe), self.timeout_s
                )
            )
        except TimeoutError:
            log.warning("%s did not answer within %gs", dependency.name, self.timeout_s)
        except Exception as exc:
            log.warning("%s probe failed: %s", dependency.name, type(exc).__name__)
        return False

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
