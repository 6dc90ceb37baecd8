"""What metrics and the access log cost per request: `python -m bench.observability`. Prints
figures; asserts nothing.

Each figure is the best of `ROUNDS` runs of `REQUESTS` requests sent straight into the ASGI app
(no sockets, so the middleware's share is not lost in the network's), in a process of its own:

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

    async def drive(app: FastAPI) -> float:
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

        best = float("inf")
        for _ in range(ROUNDS):
            started = time.perf_counter()
            for _ in range(REQUESTS):
                await app(dict(scope), receive, send)
            best = min(best, (time.perf_counter() - started) / REQUESTS)
        return best * 1e6

    bare, wrapped = app_with(middleware=False), app_with(middleware=True)
    print(f"bare {asyncio.run(drive(bare)):.1f}")
    print(f"middleware {asyncio.run(drive(wrapped)):.1f}")
    observe_request("/items/{item_id}", "GET", 200, 0.001)
    per_call = min(
        timeit.repeat(
            lambda: observe_request("/items/{item_id}", "GET", 200, 0.001),
            number=OBSERVATIONS,
            repeat=ROUNDS,
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
    print(f"best of {ROUNDS} rounds of {REQUESTS} requests into the ASGI app, per request:")
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
