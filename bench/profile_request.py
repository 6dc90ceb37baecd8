"""CPU per call of one route, in-process: `python -m bench.profile_request /auth/me [--profile]`.

The app is driven straight through ASGI (no uvicorn, no sockets) on a fresh migrated SQLite
file, as a signed-up, logged-in user, so one piece of the request path can be timed against
another without the load generator's noise. Prints the least disturbed of five runs of the
event loop thread's CPU time per call, and with `--profile` cProfile's view of one more run.
This is how the findings in the README's "Performance: the request path" were taken.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import json
import os
import pstats
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from tests.support.accounts import DEFAULT_PASSWORD

REPO_ROOT = Path(__file__).resolve().parent.parent
USERNAME = "profiled"


def _environment(workdir: Path) -> dict[str, str]:
    return {
        "ENV": "development",
        "DATABASE_URL": f"sqlite:///{workdir / 'profile.db'}",
        "STORAGE_DIR": str(workdir / "images"),
        "MAIL_OUTBOX_DIR": str(workdir / "outbox"),
        "JWT_SECRET_KEY": "profile-" + "x" * 40,
        "BCRYPT_ROUNDS": "4",
        "RATE_LIMIT_ENABLED": "false",
        "PROCESS_WORKERS": "1",
    }


class AsgiDriver:
    def __init__(self, app: Any) -> None:
        self.app = app

    async def call(
        self, method: str, path: str, headers: dict[str, str] | None = None, body: bytes = b""
    ) -> tuple[int, bytes]:
        scope = {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "method": method,
            "scheme": "http",
            "path": path,
            "raw_path": path.encode(),
            "query_string": b"",
            "root_path": "",
            "headers": [(b"host", b"profile")]
            + [(k.lower().encode(), v.encode()) for k, v in (headers or {}).items()],
            "client": ("127.0.0.1", 50000),
            "server": ("127.0.0.1", 80),
        }
        messages: list[dict[str, Any]] = []
        delivered = False

        async def receive() -> dict[str, Any]:
            nonlocal delivered
            if not delivered:
                delivered = True
                return {"type": "http.request", "body": body, "more_body": False}
            await asyncio.Event().wait()  # the client never disconnects
            raise AssertionError("unreachable")

        async def send(message: dict[str, Any]) -> None:
            messages.append(message)

        await self.app(scope, receive, send)
        status = messages[0]["status"]
        return status, b"".join(m.get("body", b"") for m in messages[1:])

    async def post_json(self, path: str, payload: dict[str, Any]) -> tuple[int, Any]:
        status, body = await self.call(
            "POST", path, {"content-type": "application/json"}, json.dumps(payload).encode()
        )
        return status, json.loads(body)


async def _profile(path: str, calls: int, with_profile: bool) -> None:
    from api.app import create_app

    app = create_app()
    driver = AsgiDriver(app)
    async with app.router.lifespan_context(app):
        signup = {
            "username": USERNAME,
            "email": f"{USERNAME}@example.com",
            "name": "Profiled",
            "password": DEFAULT_PASSWORD,
            "password_confirm": DEFAULT_PASSWORD,
            "agree_terms": True,
        }
        status, _ = await driver.post_json("/auth/signup", signup)
        assert status == 201, status
        login = {"username": USERNAME, "password": DEFAULT_PASSWORD}
        status, tokens = await driver.post_json("/auth/login", login)
        assert status == 200, tokens
        headers = {"authorization": f"Bearer {tokens['access_token']}"}
        for _ in range(200):  # warm caches, pools and compiled statements
            status, body = await driver.call("GET", path, headers)
        print(f"GET {path}: {status} {body[:120]!r}")
        runs = []
        for _ in range(5):
            started = time.thread_time()
            for _ in range(calls):
                await driver.call("GET", path, headers)
            runs.append((time.thread_time() - started) / calls * 1e6)
        print(
            f"{min(runs):.0f} µs of CPU per call, least disturbed of 5 runs of {calls} "
            f"({', '.join(f'{run:.0f}' for run in runs)})"
        )
        if with_profile:
            profiler = cProfile.Profile()
            profiler.enable()
            for _ in range(calls):
                await driver.call("GET", path, headers)
            profiler.disable()
            pstats.Stats(profiler).sort_stats("cumulative").print_stats(40)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("path", help="a GET route, e.g. /auth/me")
    parser.add_argument("--calls", type=int, default=1000)
    parser.add_argument("--profile", action="store_true", help="print cProfile's view too")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="pixelgate-profile-") as workdir:
        os.environ.update(_environment(Path(workdir)))
        subprocess.run(
            [sys.executable, "-m", "alembic", "upgrade", "head"],
            cwd=REPO_ROOT,
            check=True,
            capture_output=True,
        )
        asyncio.run(_profile(args.path, args.calls, args.profile))


if __name__ == "__main__":
    main()
