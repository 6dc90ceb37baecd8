"""What metrics and the access log cost per request: `python -m bench.observability`. Prints
figures; asserts nothing.

Each figure is the best of `ROUNDS` runs of `REQUESTS` requests sent straight into the ASGI app
(no sockets, so the middleware's share is not lost in the network's), the two apps taking turns,
in a process of its own per mode, timed in CPU time of that process (on a shared machine the
wall clock mostly measures the neighbours):

- a bare FastAPI route without any middleware;
- the same route behind `RequestContextMiddleware` (request id, log context, route template,
  `pixelgate_http_requests_total` and the duration histogram, the access line), with metrics in
  memory, and with `PROMETHEUS_MULTIPROC_DIR` (values in files, as under scripts/start.sh);

and, per call, `observe_request` alone in both modes.
"""

from __future__ import annotations

import asyncio
import logging
import os
import platform
import subprocess
import sys
import tempfile
import time
import timeit

ROUNDS = 5
REQUESTS = 5000
OBSERVATIONS = 50_000


def _measure() -> None:
    """Runs in the child: prints `name microseconds` lines."""
    from fastapi import FastAPI

    from api.core.config import Settings
    from api.core.metrics import observe_request
    from api.core.request_context import RequestContextMiddleware

    logging.getLogger("pixelgate").setLevel(logging.WARNING)  # the line is built, not written
    settings = Settings(_env_file=None)  # type: ignore[call-arg]

    def app_with(middleware: bool) -> FastAPI:
        app = FastAPI()

        @app.get("/items/{item_id}")
        async def item(item_id: int) -> dict[str, int]:
            return {"id": item_id}

        if middleware:
            app.add_middleware(RequestContextMiddleware, settings=settings)
        return app

    async def drive(apps: dict[str, FastAPI]) -> dict[str, float]:
        """The apps take turns, round after round (on a shared machine the load drifts; taking
        turns exposes each to the same drift); each figure is its best round."""
        scope = {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "method": "GET",
            "scheme": "http",
            "path": "/items/7",
            "raw_path": b"/items/7",
            "query_string": b"",
            "root_path": "",
            "headers": [(b"host", b"bench")],
            "client": ("127.0.0.1", 1234),
            "server": ("bench", 80),
        }

        async def receive() -> dict[str, object]:
            return {"type": "http.request", "body": b"", "more_body": False}

        async def send(_message: dict[str, object]) -> None:
            pass

        best = dict.fromkeys(apps, float("inf"))
        for _ in range(ROUNDS):
            for name, app in apps.items():
                started = time.process_time()
                for _ in range(REQUESTS):
                    await app(dict(scope), receive, send)
                best[name] = min(best[name], (time.process_time() - started) / REQUESTS)
        return {name: seconds * 1e6 for name, seconds in best.items()}

    apps = {"bare": app_with(middleware=False), "middleware": app_with(middleware=True)}
    for name, microseconds in asyncio.run(drive(apps)).items():
        print(f"{name} {microseconds:.1f}")
    observe_request("/items/{item_id}", "GET", 200, 0.001)
    per_call = min(
        timeit.repeat(
            lambda: observe_request("/items/{item_id}", "GET", 200, 0.001),
            number=OBSERVATIONS,
            repeat=ROUNDS,
            timer=time.process_time,
        )
    )
    print(f"observe {per_call / OBSERVATIONS * 1e6:.2f}")


def _run(multiprocess: bool) -> dict[str, float]:
    env = {k: v for k, v in os.environ.items() if k != "PROMETHEUS_MULTIPROC_DIR"}
    with tempfile.TemporaryDirectory() as directory:
        if multiprocess:
            env["PROMETHEUS_MULTIPROC_DIR"] = directory
        done = subprocess.run(
            [sys.executable, "-m", "bench.observability", "--child"],
            env=env,
            capture_output=True,
            text=True,
            check=True,
        )
    return {
        name: float(value)
        for name, value in (line.split() for line in done.stdout.split("\n") if line)
    }


def main() -> None:
    print(f"Python {platform.python_version()}, {os.cpu_count()} CPUs, {platform.platform()}")
    print(f"best of {ROUNDS} rounds of {REQUESTS} requests into the ASGI app, CPU per request:")
    for multiprocess in (False, True):
        figures = _run(multiprocess)
        mode = "multiprocess (files)" if multiprocess else "in memory"
        overhead = figures["middleware"] - figures["bare"]
        print(
            f"  metrics {mode:22} bare route {figures['bare']:6.1f} µs, "
            f"behind the middleware {figures['middleware']:6.1f} µs "
            f"(+{overhead:.1f} µs), observe_request alone {figures['observe']:.2f} µs"
        )


if __name__ == "__main__":
    if "--child" in sys.argv:
        _measure()
    else:
        main()
