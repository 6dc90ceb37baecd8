"""Deployment smoke test: scripts/start.sh, exactly as the API container runs it, against this
machine's real PostgreSQL (a fresh, empty database) and Redis (a random database index), with
two uvicorn workers; and the nginx proxy template rendered and run in front of it."""

from __future__ import annotations

import io
import itertools
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import pytest
from alembic.script import ScriptDirectory
from PIL import Image
from sqlalchemy import create_engine, text
from websockets.sync.client import connect
from websockets.typing import Subprotocol

from tests.deploy.deploy_files import render_nginx_template
from tests.support.accounts import (
    ADMIN_USERNAME,
    DEFAULT_PASSWORD,
    admin_settings,
    login_headers,
    register,
)
from tests.support.databases import (
    alembic_config,
    fresh_postgres_database,
    fresh_redis_database,
    table_names,
)
from tests.support.images import image_bytes, upload_image
from tests.support.paths import REPO_ROOT
from tests.support.processes import Answer, WorkerConnection
from tests.support.servers import LiveClient, api_env, dashboard_server, free_port, running_process

pytestmark = pytest.mark.deployment

START_SCRIPT = REPO_ROOT / "scripts" / "start.sh"
WORKERS = 2
SPREAD_TIMEOUT_S = 60
LOGIN_LIMIT = 5
START_TIMEOUT_S = 120
JOB_WAIT_S = 60
MAX_UPLOAD_MB = 10  # the default, as .env.example ships it


class Deployment:
    """The API as the container runs it: start.sh with its environment; restartable."""

    def __init__(self, env: dict[str, str], database_url: str, log_dir: Path) -> None:
        self.env = env
        self.database_url = database_url
        self.port = int(env["API_PORT"])
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.log_dir = log_dir
        self.starts = 0
        self.pid = 0
        self._stack = ExitStack()
        self._client_ips = (f"198.51.100.{n}" for n in itertools.count(1))

    @property
    def log_path(self) -> Path:
        return self.log_dir / f"start-{self.starts}.log"

    def start(self) -> None:
        self.starts += 1
        stack = ExitStack()
        try:
            process = stack.enter_context(
                running_process(
                    [str(START_SCRIPT)],
                    self.env,
                    f"{self.base_url}/health",
                    self.log_path,
                    timeout=START_TIMEOUT_S,
                )
            )
        except (RuntimeError, TimeoutError) as exc:
            raise RuntimeError(f"{exc}\n--- start.sh said ---\n{self.log()}") from exc
        self.pid = process.pid
        self._stack = stack

    def stop(self) -> None:
        self._stack.close()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def client(self) -> LiveClient:
        """A client that, through the trusted-proxy header, comes from an address of its own,
        so each test has its own rate-limit budget."""
        return LiveClient(self.base_url, {"X-Forwarded-For": next(self._client_ips)})

    def connections_on_every_worker(self, per_worker: int) -> dict[int, list[WorkerConnection]]:
        """Opens keep-alive connections until each worker holds `per_worker` of them.

        Bounded by time, not by tries: on a loaded machine a worker that is still starting
        (or busy) leaves every new connection to its sibling for a while."""
        by_worker: dict[int, list[WorkerConnection]] = {}
        deadline = time.monotonic() + SPREAD_TIMEOUT_S
        while time.monotonic() < deadline:
            connection = WorkerConnection("127.0.0.1", self.port, self.pid)
            answer = connection.request("GET", "/health")
            assert answer.status == 200, answer.body
            assert answer.worker_pid is not None, "no worker process holds the connection"
            holders = by_worker.setdefault(answer.worker_pid, [])
            if len(holders) < per_worker:
                holders.append(connection)
            else:
                connection.close()
                time.sleep(0.05)  # give the other worker a moment to reach accept()
            if len(by_worker) == WORKERS and all(len(c) == per_worker for c in by_worker.values()):
                return by_worker
        raise AssertionError(f"requests did not spread over {WORKERS} workers: {by_worker}")


@pytest.fixture(scope="module")
def redis_url() -> Iterator[str]:
    with fresh_redis_database() as url:
        yield url


@pytest.fixture(scope="module")
def deployment(
    postgres_server_url: str, redis_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Deployment]:
    workdir = tmp_path_factory.mktemp("deployment")
    with fresh_postgres_database(postgres_server_url) as database_url:
        assert table_names(database_url) == set()
        env = api_env(
            database_url,
            workdir / "images",
            ENV="production",
            RATE_LIMIT_ENABLED="true",
            RATE_LIMIT_STORAGE_URI=redis_url,
            LOGIN_RATE_LIMIT=f"{LOGIN_LIMIT}/minute",
            SIGNUP_RATE_LIMIT="1000/minute",
            API_HOST="127.0.0.1",
            API_PORT=str(free_port()),
            API_WORKERS=str(WORKERS),
            FORWARDED_ALLOW_IPS="127.0.0.1",
            DB_WAIT_TIMEOUT="30",
            PROCESS_WORKERS="1",
            MAX_UPLOAD_MB=str(MAX_UPLOAD_MB),
            PYTHON=sys.executable,
            **{key.upper(): value for key, value in admin_settings().items()},
        )
        handle = Deployment(env, database_url, workdir)
        handle.start()
        try:
            yield handle
        finally:
            handle.stop()


def test_migrations_apply_from_an_empty_database(deployment: Deployment) -> None:
    head = ScriptDirectory.from_config(alembic_config(deployment.database_url)).get_current_head()
    engine = create_engine(deployment.database_url)
    try:
        with engine.connect() as connection:
            version = connection.execute(text("SELECT version_num FROM alembic_version")).scalar()
    finally:
        engine.dispose()
    assert version == head
    assert {"users", "images", "jobs", "login_events"} <= table_names(deployment.database_url)


def test_first_admin_exists_before_serving(deployment: Deployment) -> None:
    log = deployment.log()
    assert log.index(f"username={ADMIN_USERNAME}") < log.index("==> serving")
    assert "admin ready: id=" in log
    client = deployment.client()
    me = client.get("/auth/me", headers=login_headers(client, ADMIN_USERNAME))
    assert me.status_code == 200
    assert me.json()["role"] == "admin"


def test_every_worker_answers_health(deployment: Deployment) -> None:
    by_worker = deployment.connections_on_every_worker(per_worker=1)
    for pid, (connection,) in by_worker.items():
        answer = connection.request("GET", "/health")
        assert answer.worker_pid == pid
        assert answer.status == 200
        assert answer.json()["database"] == "ok"
        connection.close()


def test_login_limit_holds_across_workers(deployment: Deployment) -> None:
    username = "limited"
    register(deployment.client(), username)
    per_worker = 6
    by_worker = deployment.connections_on_every_worker(per_worker)
    # Alternate between the workers: with per-process counters each would allow its own 5.
    connections = [c for pair in zip(*by_worker.values(), strict=True) for c in pair]
    body = {"username": username, "password": DEFAULT_PASSWORD}
    same_client = {"X-Forwarded-For": "203.0.113.77"}

    answers: list[Answer] = [
        connection.request("POST", "/auth/login", body, same_client) for connection in connections
    ]
    for connection in connections:
        connection.close()

    assert [a.status for a in answers] == [200] * LOGIN_LIMIT + [429] * (len(answers) - LOGIN_LIMIT)
    assert {a.worker_pid for a in answers} == set(by_worker)
    assert {a.worker_pid for a in answers if a.status == 429} == set(by_worker)
    assert all(int(a.headers["retry-after"]) > 0 for a in answers if a.status == 429)


def test_the_api_believes_forwarded_for_only_from_trusted_proxies(deployment: Deployment) -> None:
    client = deployment.client()
    account = register(client, "direct")
    forged = {"X-Forwarded-For": "6.6.6.6"}
    body = {"username": "direct", "password": DEFAULT_PASSWORD}
    # From 127.0.0.2, which FORWARDED_ALLOW_IPS does not name.
    untrusted = WorkerConnection("127.0.0.1", deployment.port, source_ip="127.0.0.2")
    assert untrusted.request("POST", "/auth/login", body, forged).status == 200
    untrusted.close()

    history = client.get("/auth/login-history", headers=account["headers"]).json()["items"]
    assert history[0]["ip_address"] == "127.0.0.2"
    # The logins through the trusted address (register's) kept the address it forwarded.
    assert history[1]["ip_address"] == client.headers["X-Forwarded-For"]


def test_signup_login_upload_and_process(deployment: Deployment) -> None:
    client = deployment.client()
    headers = register(client, "uploader")["headers"]
    uploaded = upload_image(client, headers, image_bytes(size=(40, 30)))
    assert uploaded.status_code == 201, uploaded.text
    image = uploaded.json()
    assert (image["width"], image["height"]) == (40, 30)

    job = client.post(
        f"/images/{image['id']}/process",
        json={"operations": [{"op": "grayscale"}, {"op": "resize", "width": 20}]},
        headers=headers,
    )
    assert job.status_code == 200, job.text
    assert job.json()["status"] == "done", job.json()
    result = client.get(f"/images/{job.json()['result_image_id']}", headers=headers).json()
    assert result["source_image_id"] == image["id"]
    assert (result["width"], result["height"]) == (20, 15)
    content = client.get(f"/images/{result['id']}/content", headers=headers)
    assert Image.open(io.BytesIO(content.content)).size == (20, 15)


def test_a_job_queued_on_one_worker_is_seen_by_every_worker(deployment: Deployment) -> None:
    client = deployment.client()
    headers = register(client, "queuer")["headers"]
    image_id = upload_image(client, headers).json()["id"]
    queued = client.post(
        f"/images/{image_id}/process",
        json={"operations": [{"op": "invert"}], "wait": False},
        headers=headers,
    )
    assert queued.status_code == 202, queued.text
    job_id = queued.json()["id"]

    by_worker = deployment.connections_on_every_worker(per_worker=1)
    seen: dict[int, dict[str, Any]] = {}
    deadline = time.monotonic() + JOB_WAIT_S
    while len(seen) < WORKERS and time.monotonic() < deadline:
        for pid, (connection,) in by_worker.items():
            answer = connection.request("GET", f"/jobs/{job_id}", headers=headers)
            assert answer.status == 200, answer.body
            if answer.json()["status"] in ("done", "failed"):
                seen[pid] = answer.json()
        time.sleep(0.1)
    assert set(seen) == set(by_worker), f"job {job_id} did not finish within {JOB_WAIT_S}s"
    assert [job["status"] for job in seen.values()] == ["done"] * WORKERS, seen
    [result_id] = {job["result_image_id"] for job in seen.values()}
    # The result file is on the shared storage: every worker serves it.
    for connection in itertools.chain(*by_worker.values()):
        answer = connection.request("GET", f"/images/{result_id}/content", headers=headers)
        assert answer.status == 200
        assert Image.open(io.BytesIO(answer.body)).size == (24, 16)
        connection.close()


def test_restart_keeps_users_and_data(deployment: Deployment) -> None:
    client = deployment.client()
    headers = register(client, "survivor")["headers"]
    original = image_bytes(size=(12, 12), color=(1, 2, 3))
    image_id = upload_image(client, headers, original).json()["id"]

    deployment.stop()
    deployment.start()

    log = deployment.log()
    assert "Running upgrade" not in log, "the schema was already at head"
    client = deployment.client()
    headers = login_headers(client, "survivor")
    assert client.get("/auth/me", headers=headers).json()["username"] == "survivor"
    assert client.get(f"/images/{image_id}/content", headers=headers).content == original
    admin = login_headers(client, ADMIN_USERNAME)
    admins = client.get("/users", params={"role": "admin"}, headers=admin).json()
    assert [user["username"] for user in admins["items"]] == [ADMIN_USERNAME]


def test_start_script_gives_up_when_the_database_never_answers(tmp_path: Path) -> None:
    env = api_env(
        f"postgresql+psycopg2://nobody@127.0.0.1:{free_port()}/none",
        tmp_path / "images",
        DB_WAIT_TIMEOUT="1",
        API_PORT=str(free_port()),
        PYTHON=sys.executable,
    )
    done = subprocess.run(
        [str(START_SCRIPT)], env=env, cwd=REPO_ROOT, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 1
    assert "database not reachable after 1s" in done.stderr
    assert "applying migrations" not in done.stdout


def test_start_script_refuses_the_example_secret_in_production(tmp_path: Path) -> None:
    from api.core.config import DEVELOPMENT_JWT_SECRET

    env = api_env(
        f"sqlite:///{tmp_path / 'app.db'}",
        tmp_path / "images",
        ENV="production",
        JWT_SECRET_KEY=DEVELOPMENT_JWT_SECRET,
        PYTHON=sys.executable,
    )
    done = subprocess.run(
        [str(START_SCRIPT)], env=env, cwd=REPO_ROOT, capture_output=True, text=True, timeout=120
    )
    assert done.returncode != 0
    assert "JWT_SECRET_KEY" in done.stderr
    assert DEVELOPMENT_JWT_SECRET not in done.stdout + done.stderr
    assert not (tmp_path / "app.db").exists(), "nothing ran before the settings were checked"


# --- the reverse proxy, rendered from deploy/nginx/pixelgate.conf.template -------------------

NGINX_MAIN = """\
daemon off;
worker_processes 1;
pid {dir}/nginx.pid;
error_log stderr notice;
{user}
events {{ worker_connections 256; }}
http {{
    access_log {dir}/access.log;
    client_body_temp_path {dir}/client_body;
    proxy_temp_path {dir}/proxy;
    fastcgi_temp_path {dir}/fastcgi;
    uwsgi_temp_path {dir}/uwsgi;
    scgi_temp_path {dir}/scgi;
    include {dir}/pixelgate.conf;
}}
"""


class Proxy:
    def __init__(self, api_port: int, dashboard_port: int) -> None:
        self.api_port = api_port
        self.dashboard_port = dashboard_port
        self.api_url = f"http://127.0.0.1:{api_port}"
        self.dashboard_url = f"http://127.0.0.1:{dashboard_port}"


@pytest.fixture(scope="module")
def dashboard_url(
    deployment: Deployment, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    log_path = tmp_path_factory.mktemp("dashboard") / "streamlit.log"
    with dashboard_server(deployment.base_url, log_path) as url:
        yield url


@pytest.fixture(scope="module")
def proxy(
    deployment: Deployment, dashboard_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Proxy]:
    nginx = shutil.which("nginx", path=f"{os.environ.get('PATH', '')}:/usr/sbin")
    if nginx is None:
        pytest.fail("nginx is required for the proxy test (scripts/ensure-services.sh installs it)")
    workdir = tmp_path_factory.mktemp("nginx")
    proxy = Proxy(free_port(), free_port())
    (workdir / "pixelgate.conf").write_text(
        render_nginx_template(
            {
                "API_UPSTREAM": f"127.0.0.1:{deployment.port}",
                "DASHBOARD_UPSTREAM": dashboard_url.removeprefix("http://"),
                "PROXY_API_LISTEN": f"127.0.0.1:{proxy.api_port}",
                "PROXY_DASHBOARD_LISTEN": f"127.0.0.1:{proxy.dashboard_port}",
            }
        )
    )
    # As root, nginx's workers would drop to `nobody`, who cannot enter pytest's temp dirs.
    user = "user root;" if os.geteuid() == 0 else ""
    (workdir / "nginx.conf").write_text(NGINX_MAIN.format(dir=workdir, user=user))
    args = [nginx, "-p", str(workdir), "-c", str(workdir / "nginx.conf"), "-e", "stderr"]
    with running_process(
        args, dict(os.environ), f"{proxy.dashboard_url}/proxy-health", workdir / "nginx.log"
    ):
        yield proxy


def test_proxy_serves_the_api_with_swagger(proxy: Proxy) -> None:
    client = LiveClient(proxy.api_url)
    assert client.get("/health").json()["database"] == "ok"
    docs = client.get("/docs")
    assert docs.status_code == 200
    assert "/openapi.json" in docs.text
    schema = client.get("/openapi.json").json()
    assert "/auth/token" in schema["paths"]


def test_proxy_passes_the_real_client_address(deployment: Deployment, proxy: Proxy) -> None:
    account = register(deployment.client(), "proxied")
    # A client at 127.0.0.2 forging X-Forwarded-For; nginx (at 127.0.0.1, the trusted proxy)
    # appends the address it really saw, and the API takes that one.
    through_proxy = WorkerConnection("127.0.0.1", proxy.api_port, source_ip="127.0.0.2")
    body = {"username": "proxied", "password": DEFAULT_PASSWORD}
    answer = through_proxy.request("POST", "/auth/login", body, {"X-Forwarded-For": "6.6.6.6"})
    assert answer.status == 200, answer.body
    history = through_proxy.request("GET", "/auth/login-history", headers=account["headers"])
    through_proxy.close()
    assert history.json()["items"][0]["ip_address"] == "127.0.0.2"


def test_oversized_uploads_get_the_api_answer_through_the_proxy(
    deployment: Deployment, proxy: Proxy
) -> None:
    headers = register(deployment.client(), "bigfile")["headers"]
    too_big = b"\0" * (MAX_UPLOAD_MB * 1024 * 1024 + 1)
    answer = upload_image(LiveClient(proxy.api_url), headers, too_big)
    assert answer.status_code == 413
    assert "detail" in answer.json(), "the API's JSON answer, not the proxy's HTML page"


def test_proxy_serves_the_dashboard_with_its_websocket(proxy: Proxy) -> None:
    client = LiveClient(proxy.dashboard_url)
    assert client.get("/proxy-health").text == "ok\n"
    assert client.get("/_stcore/health").text == "ok"
    page = client.get("/")
    assert page.status_code == 200
    assert "Streamlit" in page.text
    # The browser talks to Streamlit over a WebSocket: the upgrade must pass the proxy.
    stream = f"ws://127.0.0.1:{proxy.dashboard_port}/_stcore/stream"
    with connect(stream, subprotocols=[Subprotocol("streamlit")], open_timeout=30) as websocket:
        assert websocket.response is not None
        assert websocket.response.status_code == 101
