"""Real servers for tests about HTTP across processes: free ports, server processes, the live
API (uvicorn) and dashboard (Streamlit), a stand-in HTTP server, and `LiveClient`."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx2

from tests.support.accounts import TEST_BCRYPT_ROUNDS, TEST_JWT_SECRET
from tests.support.paths import REPO_ROOT


@contextmanager
def http_server_thread(handler: type[BaseHTTPRequestHandler]) -> Iterator[str]:
    """A stand-in HTTP server in a thread, to test clients against odd answers; yields its URL."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


class LiveClient(httpx2.Client):
    """An HTTP client of a running server with TestClient's interface (both are httpx2
    clients), so the same helpers drive either: paths such as "/auth/login" go to `base_url`,
    redirects are followed as TestClient follows them, and `headers` go with every request.
    No proxy from the environment stands between a test and its local server."""

    def __init__(
        self, base_url: str, headers: dict[str, str] | None = None, timeout: float = 60.0
    ) -> None:
        super().__init__(
            base_url=base_url,
            headers=headers,
            timeout=timeout,
            follow_redirects=True,
            trust_env=False,
        )


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for_http(
    url: str, timeout: float = 60.0, process: subprocess.Popen[Any] | None = None
) -> None:
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"process exited with {process.returncode} before {url} answered")
        try:
            if httpx2.get(url, timeout=2, trust_env=False).status_code < 500:
                return
        except httpx2.HTTPError as exc:
            last_error = exc
        time.sleep(0.2)
    raise TimeoutError(f"{url} did not answer within {timeout}s: {last_error}")


def api_env(database_url: str, storage_dir: Path, **extra: str) -> dict[str, str]:
    """Environment for an API server process on the given database (rate limits off)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ADMIN_", "RATE_LIMIT"))}
    env.update(
        {
            "ENV": "development",
            "DATABASE_URL": database_url,
            "STORAGE_DIR": str(storage_dir),
            # Mails next to the images, not in the repository's data/ directory.
            "MAIL_OUTBOX_DIR": str(storage_dir.parent / "outbox"),
            "JWT_SECRET_KEY": TEST_JWT_SECRET,
            "BCRYPT_ROUNDS": str(TEST_BCRYPT_ROUNDS),
            "RATE_LIMIT_ENABLED": "false",
            "PROCESS_WORKERS": "2",
            "PYTHONUNBUFFERED": "1",
        }
    )
    env.update(extra)
    return env


@contextmanager
def running_process(
    args: list[str], env: dict[str, str], ready_url: str, log_path: Path, timeout: float = 60.0
) -> Iterator[subprocess.Popen[bytes]]:
    """Starts a server process, waits until `ready_url` answers, stops it afterwards.

    Its output goes to `log_path`, so a failing test can show what the server said.
    """
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            args, env=env, cwd=REPO_ROOT, stdout=log, stderr=subprocess.STDOUT
        )
        try:
            wait_for_http(ready_url, timeout, process)
            yield process
        finally:
            process.terminate()
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


@contextmanager
def api_server(env: dict[str, str], log_path: Path, workers: int = 1) -> Iterator[str]:
    """A real uvicorn serving api.main:app; yields its base URL."""
    port = free_port()
    args = [
        sys.executable,
        "-m",
        "uvicorn",
        "api.main:app",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
    ]
    if workers > 1:
        args += ["--workers", str(workers)]
    base_url = f"http://127.0.0.1:{port}"
    with running_process(args, env, f"{base_url}/health", log_path):
        yield base_url


@contextmanager
def dashboard_server(api_base_url: str, log_path: Path, port: int | None = None) -> Iterator[str]:
    """The real dashboard (`streamlit run frontend/app.py`) using the API at `api_base_url`;
    yields its base URL. `port`: one chosen beforehand (e.g. for the API's
    PUBLIC_DASHBOARD_URL), else a free one."""
    port = port or free_port()
    env = {**os.environ, "API_BASE_URL": api_base_url, "PYTHONUNBUFFERED": "1"}
    args = [
        sys.executable,
        "-m",
        "streamlit",
        "run",
        "frontend/app.py",
        "--server.address",
        "127.0.0.1",
        "--server.port",
        str(port),
        "--server.headless",
        "true",
        "--browser.gatherUsageStats",
        "false",
    ]
    base_url = f"http://127.0.0.1:{port}"
    with running_process(args, env, f"{base_url}/_stcore/health", log_path):
        yield base_url
