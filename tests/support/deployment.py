"""The API as its container runs it (scripts/start.sh with an environment, restartable), and
nginx running a rendered proxy template: for the deployment tests."""

from __future__ import annotations

import itertools
import os
import shutil
import sys
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

from tests.support.paths import REPO_ROOT
from tests.support.processes import WorkerConnection
from tests.support.servers import LiveClient, api_env, free_port, running_process

START_SCRIPT = REPO_ROOT / "scripts" / "start.sh"
SPREAD_TIMEOUT_S = 60
START_TIMEOUT_S = 120


class Deployment:
    """The API as the container runs it: start.sh with its environment; restartable."""

    def __init__(self, env: dict[str, str], database_url: str, log_dir: Path) -> None:
        self.env = env
        self.database_url = database_url
        self.port = int(env["API_PORT"])
        self.workers = int(env.get("API_WORKERS", "1"))
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
            spread = all(len(c) == per_worker for c in by_worker.values())
            if len(by_worker) == self.workers and spread:
                return by_worker
        raise AssertionError(f"requests did not spread over {self.workers} workers: {by_worker}")


def deployment_env(database_url: str, workdir: Path, workers: int, **extra: str) -> dict[str, str]:
    """start.sh's environment for `workers` uvicorn workers on a free local port, each with a
    one-process pool; `extra` adds or overrides variables."""
    return api_env(
        database_url,
        workdir / "images",
        **{
            "API_HOST": "127.0.0.1",
            "API_PORT": str(free_port()),
            "API_WORKERS": str(workers),
            "DB_WAIT_TIMEOUT": "30",
            "PROCESS_WORKERS": "1",
            "PYTHON": sys.executable,
            **extra,
        },
    )


@contextmanager
def started_deployment(
    env: dict[str, str], database_url: str, workdir: Path
) -> Iterator[Deployment]:
    deployment = Deployment(env, database_url, workdir)
    deployment.start()
    try:
        yield deployment
    finally:
        deployment.stop()


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


def nginx_binary() -> str | None:
    return shutil.which("nginx", path=f"{os.environ.get('PATH', '')}:/usr/sbin")


@contextmanager
def running_nginx(
    nginx: str, config: str, includes: Path, workdir: Path, ready_url: str
) -> Iterator[None]:
    """nginx serving `config` (a rendered proxy template) until the block ends, with the
    directory of files it includes beside its nginx.conf, as in the image."""
    (workdir / "pixelgate.conf").write_text(config)
    shutil.copytree(includes, workdir / includes.name, dirs_exist_ok=True)
    # As root, nginx's workers would drop to `nobody`, who cannot enter pytest's temp dirs.
    user = "user root;" if os.geteuid() == 0 else ""
    (workdir / "nginx.conf").write_text(NGINX_MAIN.format(dir=workdir, user=user))
    args = [nginx, "-p", str(workdir), "-c", str(workdir / "nginx.conf"), "-e", "stderr"]
    with running_process(args, dict(os.environ), ready_url, workdir / "nginx.log"):
        yield
