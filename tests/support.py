"""Helpers shared by the test modules (not fixtures): migrations, accounts, processes."""

from __future__ import annotations

import io
import os
import random
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pyotp
import redis
import requests
from alembic.config import Config
from PIL import Image
from sqlalchemy import create_engine, inspect, text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session

from alembic import command

REPO_ROOT = Path(__file__).resolve().parent.parent
TEST_JWT_SECRET = "test-secret-" + "x" * 40
DEFAULT_PASSWORD = "Str0ng!pass"
ADMIN_USERNAME = "rootadmin"


def alembic_config(database_url: str) -> Config:
    config = Config(str(REPO_ROOT / "alembic.ini"))
    config.set_main_option("sqlalchemy.url", database_url.replace("%", "%%"))
    config.attributes["configure_logger"] = False
    return config


def migrate(database_url: str, revision: str = "head") -> None:
    command.upgrade(alembic_config(database_url), revision)


@contextmanager
def fresh_postgres_database(server_url: str) -> Iterator[str]:
    """A new, empty database on the server `server_url` points at; yields its URL and drops it
    afterwards, even while other processes still hold connections to it."""
    name = f"pixelgate_test_{uuid.uuid4().hex[:12]}"
    admin = create_engine(server_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield make_url(server_url).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def signup(client: Any, username: str, password: str = DEFAULT_PASSWORD, **fields: Any) -> Any:
    """Signs a user up through the API; returns the response."""
    body = {
        "username": username,
        "email": f"{username}@example.com",
        "name": username.title(),
        "password": password,
        "password_confirm": password,
        "agree_terms": True,
    }
    body.update(fields)
    return client.post("/auth/signup", json=body)


def login(client: Any, username: str, password: str = DEFAULT_PASSWORD, **fields: Any) -> Any:
    return client.post("/auth/login", json={"username": username, "password": password, **fields})


def bearer(access_token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {access_token}"}


def register(client: Any, username: str, password: str = DEFAULT_PASSWORD) -> dict[str, Any]:
    """Signs up and logs in; returns {"user", "tokens", "headers"}."""
    created = signup(client, username, password)
    assert created.status_code == 201, created.text
    logged_in = login(client, username, password)
    assert logged_in.status_code == 200, logged_in.text
    tokens = logged_in.json()
    return {"user": created.json(), "tokens": tokens, "headers": bearer(tokens["access_token"])}


def app_session(client: Any) -> AbstractContextManager[Session]:
    """A session on a TestClient app's own database: for test setup and inspection."""
    return client.app.state.database.session()


def table_names(database_url: str) -> set[str]:
    """The tables that exist in a database (alembic_version included)."""
    engine = create_engine(database_url)
    try:
        return set(inspect(engine).get_table_names())
    finally:
        engine.dispose()


def refresh_cookie(response: Any) -> str:
    """The Set-Cookie header a response sets for the refresh token."""
    cookies = [c for c in response.headers.get_list("set-cookie") if c.startswith("refresh_token=")]
    assert len(cookies) == 1, response.headers
    return cookies[0]


def admin_settings() -> dict[str, str]:
    """Settings overrides whose app creates the admin ADMIN_USERNAME at start-up."""
    return {
        "admin_username": ADMIN_USERNAME,
        "admin_email": f"{ADMIN_USERNAME}@example.com",
        "admin_password": DEFAULT_PASSWORD,
    }


def login_headers(client: Any, username: str, password: str = DEFAULT_PASSWORD) -> dict[str, str]:
    """Logs an existing account in; returns its Bearer headers."""
    response = login(client, username, password)
    assert response.status_code == 200, response.text
    return bearer(response.json()["access_token"])


TOTP_STEP_S = 30


def totp_code(secret: str, steps: int = 0) -> str:
    """The code an authenticator app shows `steps` time steps from now."""
    return pyotp.TOTP(secret).at(time.time() + steps * TOTP_STEP_S)


def wrong_totp_code(secret: str) -> str:
    """Six digits that are no code of any step near now (a fixed guess is right one time in
    a million)."""
    near = {totp_code(secret, steps) for steps in range(-3, 4)}
    return next(f"{n:06d}" for n in range(1_000_000) if f"{n:06d}" not in near)


def wait_for_fresh_step(margin_s: float = 3.0) -> None:
    """Waits for the next time step when this one ends within `margin_s`, so that a code
    computed now still belongs to the server's current step when the request arrives."""
    left = TOTP_STEP_S - time.time() % TOTP_STEP_S
    if left < margin_s:
        time.sleep(left + 0.05)


def enable_mfa(client: Any, headers: dict[str, str]) -> dict[str, Any]:
    """Sets up and enables TOTP with the current code, which then counts as used: the next
    login takes `totp_code(secret, 1)`. Returns {"secret", "recovery_codes"}."""
    setup = client.post("/auth/mfa/totp/setup", headers=headers)
    assert setup.status_code == 200, setup.text
    secret = setup.json()["secret"]
    enabled = client.post(
        "/auth/mfa/totp/enable", json={"code": totp_code(secret)}, headers=headers
    )
    assert enabled.status_code == 200, enabled.text
    return {"secret": secret, "recovery_codes": enabled.json()["recovery_codes"]}


def mfa_token(client: Any, username: str, password: str = DEFAULT_PASSWORD) -> str:
    """The first step of a login of an account with 2FA."""
    response = login(client, username, password)
    assert response.status_code == 200, response.text
    assert response.json()["mfa_required"] is True, response.text
    return response.json()["mfa_token"]


def verify_mfa(client: Any, token: str, code: str, **fields: Any) -> Any:
    return client.post("/auth/mfa/verify", json={"mfa_token": token, "code": code, **fields})


REDIS_SERVER_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379")


def redis_reachable(server_url: str = REDIS_SERVER_URL) -> bool:
    client = redis.Redis.from_url(server_url, socket_timeout=3)
    try:
        return bool(client.ping())
    except redis.RedisError:
        return False
    finally:
        client.close()


@contextmanager
def fresh_redis_database(server_url: str = REDIS_SERVER_URL) -> Iterator[str]:
    """A random database index (1..15) of that Redis, flushed before and after; yields its URL."""
    url = f"{server_url.rstrip('/')}/{random.randint(1, 15)}"
    client = redis.Redis.from_url(url, socket_timeout=3)
    client.flushdb()
    try:
        yield url
    finally:
        client.flushdb()
        client.close()


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


class LiveClient(requests.Session):
    """requests against a running server, taking TestClient-style paths ("/auth/login"), so the
    account helpers above work on real servers too. `headers` go with every request."""

    def __init__(self, base_url: str, headers: dict[str, str] | None = None) -> None:
        super().__init__()
        self.base_url = base_url.rstrip("/")
        self.headers.update(headers or {})

    def request(self, method: str | bytes, url: str | bytes, *args: Any, **kwargs: Any) -> Any:
        if isinstance(url, str) and url.startswith("/"):
            url = self.base_url + url
        kwargs.setdefault("timeout", 60)
        return super().request(method, url, *args, **kwargs)


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
            if requests.get(url, timeout=2).status_code < 500:
                return
        except requests.RequestException as exc:
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
            "JWT_SECRET_KEY": TEST_JWT_SECRET,
            "BCRYPT_ROUNDS": "4",
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
def dashboard_server(api_base_url: str, log_path: Path) -> Iterator[str]:
    """The real dashboard (`streamlit run frontend/app.py`) using the API at `api_base_url`;
    yields its base URL."""
    port = free_port()
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


def image_bytes(
    image_format: str = "PNG",
    size: tuple[int, int] = (24, 16),
    color: tuple[int, ...] = (200, 80, 40),
    **save_options: Any,
) -> bytes:
    """A small real image encoded as `image_format` (PNG, JPEG, WEBP, GIF, BMP, TIFF...)."""
    buffer = io.BytesIO()
    Image.new("RGBA" if len(color) == 4 else "RGB", size, color).save(
        buffer, image_format, **save_options
    )
    return buffer.getvalue()


def upload_image(
    client: Any,
    headers: dict[str, str],
    data: bytes | None = None,
    filename: str = "picture.png",
    content_type: str = "image/png",
    field: str = "file",
) -> Any:
    """POST /images with `data` (a small PNG by default) as a multipart file; the response."""
    files = {field: (filename, image_bytes() if data is None else data, content_type)}
    return client.post("/images", files=files, headers=headers)


def process_is_gone(pid: int, timeout: float = 10.0) -> bool:
    """True once `pid` has exited (a zombie not yet reaped counts as gone); waits at most
    `timeout` seconds for it."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except (FileNotFoundError, ProcessLookupError):
            return True
        if state == "Z":
            return True
        time.sleep(0.05)
    return False


# Seconds of work from a tiny file: a 4000×4000 canvas blurred again and again.
SLOW = [{"op": "resize", "width": 4000, "height": 4000}, *[{"op": "blur", "radius": 50}] * 9]
POLL_DEADLINE_S = 120


def wait_for_job(
    client: Any, headers: dict[str, str], job_id: int, statuses: set[str]
) -> dict[str, Any]:
    """Polls the job until its status is one of `statuses` (not a timing assertion: the
    deadline only keeps a broken build from hanging)."""
    deadline = time.monotonic() + POLL_DEADLINE_S
    while time.monotonic() < deadline:
        job = client.get(f"/jobs/{job_id}", headers=headers).json()
        if job["status"] in statuses:
            return job
        time.sleep(0.02)
    raise AssertionError(f"job {job_id} never reached {statuses}: {job}")


def process(
    client: Any, headers: dict[str, str], image_id: int, operations: list[Any], **body: Any
) -> Any:
    return client.post(
        f"/images/{image_id}/process", json={"operations": operations, **body}, headers=headers
    )
