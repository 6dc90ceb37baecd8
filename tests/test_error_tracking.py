"""Optional error tracking: nothing is initialised without SENTRY_DSN; with it, a real API server
reports an unhandled error to a Sentry endpoint (a stand-in that keeps what it receives), and
the report holds no password, token or cookie. In processes of their own: the SDK patches
Starlette and FastAPI for the life of the process it is initialised in."""

from __future__ import annotations

import gzip
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, text

from tests.support.accounts import DEFAULT_PASSWORD, bearer, register
from tests.support.databases import migrate
from tests.support.paths import REPO_ROOT
from tests.support.servers import LiveClient, api_env, api_server, http_server_thread

REPORT_WAIT_S = 30


class _Ingest(BaseHTTPRequestHandler):
    received: list[bytes] = []
    lock = threading.Lock()

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        if self.headers.get("Content-Encoding") == "gzip":
            body = gzip.decompress(body)
        with self.lock:
            self.received.append(body)
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *_args: Any) -> None:
        pass


@pytest.fixture
def ingest() -> Iterator[str]:
    _Ingest.received = []
    with http_server_thread(_Ingest) as url:
        yield url


def _initialised(env: dict[str, str]) -> str:
    script = "import api.main, sentry_sdk; print(sentry_sdk.is_initialized())"
    done = subprocess.run(
        [sys.executable, "-c", script],
        env=env,
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def test_nothing_is_initialised_without_a_dsn(tmp_path: Path, ingest: str) -> None:
    env = api_env(f"sqlite:///{tmp_path / 'app.db'}", tmp_path / "images")
    env.pop("SENTRY_DSN", None)
    assert _initialised(env) == "False"
    dsn = ingest.replace("http://", "http://publickey@") + "/1"
    assert _initialised({**env, "SENTRY_DSN": dsn}) == "True"


def test_an_unhandled_error_is_reported_without_secrets(tmp_path: Path, ingest: str) -> None:
    database_url = f"sqlite:///{tmp_path / 'app.db'}"
    migrate(database_url)
    dsn = ingest.replace("http://", "http://publickey@") + "/1"
    env = api_env(database_url, tmp_path / "images", SENTRY_DSN=dsn)
    with api_server(env, tmp_path / "api.log") as base_url:
        client = LiveClient(base_url)
        tokens = register(client, "reported")["tokens"]
        # The login history's table goes away under the running server: the next login fails
        # with an error no handler expects.
        engine = create_engine(database_url)
        with engine.begin() as connection:
            connection.execute(text("DROP TABLE login_events"))
        engine.dispose()
        failed = client.post(
            "/auth/login",
            json={"username": "reported", "password": DEFAULT_PASSWORD},
            headers={
                **bearer(tokens["access_token"]),
                "Cookie": f"refresh_token={tokens['refresh_token']}",
            },
        )
        assert failed.status_code == 500
        reports = _wait_for_reports()

    sent = b"\n".join(reports).decode(errors="replace")
    assert "OperationalError" in sent
    assert '"component":"api"' in sent.replace(" ", "")
    for secret in (DEFAULT_PASSWORD, tokens["access_token"], tokens["refresh_token"]):
        assert secret not in sent


def _wait_for_reports() -> list[bytes]:
    """Until the SDK's background transport delivered something (not a timing assertion:
    the deadline only keeps a broken build from hanging)."""
    deadline = time.monotonic() + REPORT_WAIT_S
    while time.monotonic() < deadline:
        with _Ingest.lock:
            if any(b"OperationalError" in body for body in _Ingest.received):
                return list(_Ingest.received)
        time.sleep(0.1)
    raise AssertionError(f"nothing reported within {REPORT_WAIT_S}s: {_Ingest.received!r}")
