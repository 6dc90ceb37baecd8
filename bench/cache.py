"""Cache benchmark: `python -m bench.cache`. Prints figures; asserts nothing.

A real uvicorn server (one worker) on a fresh PostgreSQL database, with and without
`CACHE_URL` (a fresh Redis database), the two taking turns `ROUNDS` times; each figure is the
best round. Measured, one client at a time over a kept-alive connection:

- `GET /auth/me` (the authenticated lookup of user and session, and nothing else);
- `GET /users` as an admin (that lookup, then a page of 20 of `USERS` accounts and the count);

and, for both, the throughput of `CONCURRENCY` clients at once.
"""

from __future__ import annotations

import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

from tests.support.accounts import ADMIN_USERNAME, DEFAULT_PASSWORD, register
from tests.support.databases import (
    POSTGRES_SERVER_URL,
    fresh_postgres_database,
    fresh_redis_database,
    migrate,
)
from tests.support.servers import api_env, free_port, running_process

ROUNDS = 3
REQUESTS = 400
CONCURRENCY = 8
CONCURRENT_REQUESTS = 800
USERS = 200
ROUTES = ("/auth/me", "/users")


@dataclass(frozen=True)
class Figures:
    p50_ms: float
    p90_ms: float
    requests_per_s: float


@contextmanager
def _server(database_url: str, storage: Path, cache_url: str | None) -> Iterator[str]:
    port = free_port()
    env = api_env(
        database_url,
        storage,
        ADMIN_USERNAME=ADMIN_USERNAME,
        ADMIN_EMAIL=f"{ADMIN_USERNAME}@example.com",
        ADMIN_PASSWORD=DEFAULT_PASSWORD,
        LOG_LEVEL="WARNING",
    )
    env.pop("CACHE_URL", None)
    if cache_url is not None:
        env["CACHE_URL"] = cache_url
    args = [sys.executable, "-m", "uvicorn", "api.main:app", "--host", "127.0.0.1"]
    args += ["--port", str(port), "--no-access-log", "--log-level", "warning"]
    base = f"http://127.0.0.1:{port}"
    with running_process(args, env, f"{base}/health", storage / f"server-{port}.log"):
        yield base


def _admin_headers(base: str) -> dict[str, str]:
    with httpx.Client(base_url=base) as client:
        answer = client.post(
            "/auth/login", json={"username": ADMIN_USERNAME, "password": DEFAULT_PASSWORD}
        )
        answer.raise_for_status()
        return {"Authorization": f"Bearer {answer.json()['access_token']}"}


def _sequential(base: str, route: str, headers: dict[str, str]) -> list[float]:
    durations = []
    with httpx.Client(base_url=base, headers=headers) as client:
        for _ in range(20):  # warm-up: connection, caches, the server's first requests
            client.get(route).raise_for_status()
        for _ in range(REQUESTS):
            started = time.perf_counter()
            client.get(route).raise_for_status()
            durations.append(time.perf_counter() - started)
    return durations


def _concurrent(base: str, route: str, headers: dict[str, str]) -> float:
    per_client = CONCURRENT_REQUESTS // CONCURRENCY

    def run() -> None:
        with httpx.Client(base_url=base, headers=headers) as client:
            for _ in range(per_client):
                client.get(route).raise_for_status()

    started = time.perf_counter()
    with ThreadPoolExecutor(CONCURRENCY) as pool:
        for future in [pool.submit(run) for _ in range(CONCURRENCY)]:
            future.result()
    return per_client * CONCURRENCY / (time.perf_counter() - started)


def _measure(base: str) -> dict[str, Figures]:
    headers = _admin_headers(base)
    figures = {}
    for route in ROUTES:
        durations = sorted(_sequential(base, route, headers))
        figures[route] = Figures(
            p50_ms=statistics.median(durations) * 1000,
            p90_ms=durations[int(len(durations) * 0.9)] * 1000,
            requests_per_s=_concurrent(base, route, headers),
        )
    return figures


def _best(rounds: list[dict[str, Figures]]) -> dict[str, Figures]:
    return {
        route: Figures(
            p50_ms=min(r[route].p50_ms for r in rounds),
            p90_ms=min(r[route].p90_ms for r in rounds),
            requests_per_s=max(r[route].requests_per_s for r in rounds),
        )
        for route in ROUTES
    }


def main() -> None:
    storage = Path(tempfile.mkdtemp(prefix="pixelgate-bench-cache-"))
    try:
        with (
            fresh_postgres_database(POSTGRES_SERVER_URL) as database_url,
            fresh_redis_database() as cache_url,
        ):
            migrate(database_url)
            results: dict[str, list[dict[str, Figures]]] = {"off": [], "on": []}
            for round_number in range(ROUNDS):
                for mode, url in (("off", None), ("on", cache_url)):
                    with _server(database_url, storage, url) as base:
                        if round_number == 0 and mode == "off":
                            with httpx.Client(base_url=base) as seeding:
                                for index in range(USERS):
                                    register(seeding, f"bench{index:04d}")
                        results[mode].append(_measure(base))
            _print(_best(results["off"]), _best(results["on"]))
    finally:
        shutil.rmtree(storage, ignore_errors=True)


def _print(off: dict[str, Figures], on: dict[str, Figures]) -> None:
    print(
        f"Cache benchmark on PostgreSQL, {platform.processor() or platform.machine()}, "
        f"{os.cpu_count()} CPUs; best of {ROUNDS} rounds; {USERS} accounts"
    )
    print(
        f"{'route':<10} {'cache':<6} {'p50 ms':>8} {'p90 ms':>8} "
        f"{f'req/s ({CONCURRENCY} clients)':>20}"
    )
    for route in ROUTES:
        for mode, figures in (("off", off[route]), ("on", on[route])):
            print(
                f"{route:<10} {mode:<6} {figures.p50_ms:8.2f} {figures.p90_ms:8.2f} "
                f"{figures.requests_per_s:20.0f}"
            )
        speedup = off[route].p50_ms / on[route].p50_ms
        print(f"{route:<10} p50 with the cache: {speedup:.2f}× as fast")


if __name__ == "__main__":
    main()
