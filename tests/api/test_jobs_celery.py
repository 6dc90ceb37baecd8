"""PROCESSING_BACKEND=celery against real workers (`celery -A api.worker worker` processes) on
a fresh RabbitMQ vhost and PostgreSQL database of this module: a killed pool process, a
worker host that vanishes, no worker at all, the cluster-wide queue limit, /health."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from api.app import create_app
from api.core.config import Settings
from api.models import Image, Job
from api.processing.celery_app import JOBS_QUEUE
from api.services.celery_job_runner import BROKER_UNREACHABLE_ERROR
from api.services.server_instances import STALE_JOB_ERROR
from api.services.worker_jobs import WORKER_LOST_ERROR
from tests.support.accounts import TEST_JWT_SECRET, register
from tests.support.broker import fresh_rabbitmq_vhost, purge_queue
from tests.support.databases import app_session, fresh_postgres_database, migrate, truncate_all
from tests.support.images import SLOW, process, upload_image, wait_for_job
from tests.support.paths import REPO_ROOT
from tests.support.servers import api_env, free_port
from tests.support.workers import WorkerProcess, celery_worker

CELERY = [sys.executable, "-m", "celery", "-A", "api.worker"]
# Short, so that a vanished host is found quickly; three missed beats must still be far longer
# than a beat takes on a loaded machine.
HEARTBEAT_S = 2.0
# The contract's bound for a killed pool process.
KILLED_POOL_PROCESS_FAILS_WITHIN_S = 5


@pytest.fixture(scope="module")
def module_database(postgres_server_url: str) -> Iterator[str]:
    with fresh_postgres_database(postgres_server_url) as url:
        migrate(url)
        yield url


@pytest.fixture(scope="module")
def module_broker(rabbitmq_server_url: str) -> Iterator[str]:
    with fresh_rabbitmq_vhost(rabbitmq_server_url) as url:
        yield url


@pytest.fixture
def cluster_settings(module_database: str, module_broker: str, tmp_path: Path) -> dict[str, Any]:
    # Ids start again at 1 in every test: no message of an earlier test may reach its workers.
    truncate_all(module_database)
    purge_queue(module_broker, JOBS_QUEUE)
    return {
        "env": "development",
        "database_url": module_database,
        "storage_dir": tmp_path / "images",
        "jwt_secret_key": TEST_JWT_SECRET,
        "bcrypt_rounds": 4,
        "rate_limit_enabled": False,
        "processing_backend": "celery",
        "celery_broker_url": module_broker,
        "job_heartbeat_s": HEARTBEAT_S,
    }


@pytest.fixture
def api(cluster_settings: dict[str, Any]) -> Callable[..., AbstractContextManager[TestClient]]:
    """`with api(**overrides) as client:` one API process of the cluster."""

    @contextmanager
    def start(**overrides: Any) -> Iterator[TestClient]:
        settings = Settings(_env_file=None, **{**cluster_settings, **overrides})  # type: ignore[call-arg]
        with TestClient(create_app(settings)) as client:
            yield client

    return start


@pytest.fixture
def worker(
    cluster_settings: dict[str, Any], tmp_path: Path
) -> Callable[..., AbstractContextManager[WorkerProcess]]:
    """`with worker(concurrency=1) as host:` a worker host of the cluster."""
    env = api_env(
        cluster_settings["database_url"],
        cluster_settings["storage_dir"],
        PROCESSING_BACKEND="celery",
        CELERY_BROKER_URL=cluster_settings["celery_broker_url"],
        JOB_HEARTBEAT_S=str(HEARTBEAT_S),
    )
    started = 0

    def start(concurrency: int = 2) -> AbstractContextManager[WorkerProcess]:
        nonlocal started
        started += 1
        return celery_worker(env, tmp_path / f"worker-{started}.log", concurrency)

    return start


def _result_images(client: TestClient) -> int:
    with app_session(client) as db:
        return db.scalar(select(func.count()).where(Image.source_image_id.is_not(None))) or 0


def test_a_job_runs_on_a_worker_and_health_reports_the_broker(
    api: Callable[..., Any], worker: Callable[..., Any]
) -> None:
    with worker() as host, api() as client:
        assert client.get("/health").json() == {
            "status": "ok",
            "database": "ok",
            "workers": 0,
            "broker": "ok",
        }
        headers = register(client, "alice")["headers"]
        image_id = upload_image(client, headers).json()["id"]
        job = process(client, headers, image_id, [{"op": "invert"}]).json()
        assert job["status"] == "done", job
        assert job["result_image_id"] is not None
        with app_session(client) as db:
            runner = db.get_one(Job, job["id"]).server_id
        assert runner != client.app.state.job_runner.server_id  # run by the worker host

        # The compose healthcheck's command, against this worker.
        ping = subprocess.run(
            [*CELERY, "inspect", "ping", "-d", host.nodename, "--timeout", "10"],
            env={**os.environ, **_worker_env(client)},
            cwd=REPO_ROOT,
            capture_output=True,
            timeout=60,
        )
        assert ping.returncode == 0, ping.stdout + ping.stderr
        assert b"pong" in ping.stdout


def _worker_env(client: TestClient) -> dict[str, str]:
    settings = client.app.state.settings
    return {
        "DATABASE_URL": settings.database_url,
        "PROCESSING_BACKEND": "celery",
        "CELERY_BROKER_URL": settings.celery_broker_url.get_secret_value(),
        "JWT_SECRET_KEY": TEST_JWT_SECRET,
    }


def test_a_killed_pool_process_fails_its_job_and_the_next_job_runs(
    api: Callable[..., Any], worker: Callable[..., Any]
) -> None:
    with worker(concurrency=1) as host, api() as client:
        headers = register(client, "alice")["headers"]
        image_id = upload_image(client, headers).json()["id"]
        doomed = process(client, headers, image_id, SLOW, wait=False).json()
        running = wait_for_job(client, headers, doomed["id"], {"running"})
        [pool_pid] = host.pool_pids()
        os.kill(pool_pid, signal.SIGKILL)
        killed_at = time.monotonic()

        failed = wait_for_job(client, headers, doomed["id"], {"done", "failed"})
        assert time.monotonic() - killed_at < KILLED_POOL_PROCESS_FAILS_WITHIN_S
        assert (failed["status"], failed["error"]) == ("failed", WORKER_LOST_ERROR)
        assert failed["started_at"] == running["started_at"]  # not run a second time

        after = process(client, headers, image_id, [{"op": "invert"}]).json()
        assert after["status"] == "done", after
        assert pool_pid not in host.pool_pids()
        assert _result_images(client) == 1


def test_a_vanished_worker_host_has_its_job_failed_never_revived(
    api: Callable[..., Any], worker: Callable[..., Any]
) -> None:
    with api() as client:
        headers = register(client, "alice")["headers"]
        image_id = upload_image(client, headers).json()["id"]
        with worker(concurrency=1) as host:
            lost = process(client, headers, image_id, SLOW, wait=False).json()
            wait_for_job(client, headers, lost["id"], {"running"})
            host.kill_host()
        # Nothing restarts it: the API's heartbeat finds the silent instance's job.
        failed = wait_for_job(client, headers, lost["id"], {"done", "failed"})
        assert (failed["status"], failed["error"]) == ("failed", STALE_JOB_ERROR)

        # A new host gets the lost job's message back (it was never acknowledged) and leaves
        # the failed job alone; new jobs run there.
        with worker() as _replacement:
            after = process(client, headers, image_id, [{"op": "invert"}]).json()
            assert after["status"] == "done", after
            again = client.get(f"/jobs/{lost['id']}", headers=headers).json()
        assert (again["status"], again["error"]) == ("failed", STALE_JOB_ERROR)
        assert _result_images(client) == 1


def test_without_a_worker_jobs_stay_queued_and_run_when_one_starts(
    api: Callable[..., Any], worker: Callable[..., Any]
) -> None:
    with api() as client:
        headers = register(client, "alice")["headers"]
        image_id = upload_image(client, headers).json()["id"]
        queued = process(client, headers, image_id, [{"op": "invert"}], wait=False)
        assert queued.status_code == 202
        time.sleep(4 * HEARTBEAT_S)  # heartbeats and stale-job checks go by
        assert client.get(f"/jobs/{queued.json()['id']}", headers=headers).json()["status"] == (
            "queued"
        )
        with api() as restarted_api:  # an API restart leaves it queued too
            assert restarted_api.get("/health").status_code == 200
        with worker():
            done = wait_for_job(client, headers, queued.json()["id"], {"done", "failed"})
        assert done["status"] == "done", done


def test_the_queue_limit_counts_the_whole_cluster(
    api: Callable[..., Any], worker: Callable[..., Any]
) -> None:
    with api(max_queued_jobs=2) as first, api(max_queued_jobs=2) as second:
        headers = register(first, "alice")["headers"]
        image_id = upload_image(first, headers).json()["id"]
        for client in (first, second):
            accepted = process(client, headers, image_id, [{"op": "invert"}], wait=False)
            assert accepted.status_code == 202
        for client in (first, second):
            refused = process(client, headers, image_id, [{"op": "invert"}], wait=False)
            assert refused.status_code == 503
            assert int(refused.headers["Retry-After"]) >= 1
            assert "queue is full" in refused.json()["detail"]
            batch = client.post(
                "/images/process-batch",
                json={"image_ids": [image_id], "operations": [{"op": "sepia"}]},
                headers=headers,
            )
            assert batch.status_code == 503
        assert first.get("/jobs", headers=headers).json()["total"] == 2  # nothing half-queued
        with worker():
            jobs = first.get("/jobs", headers=headers).json()["items"]
            finished = [wait_for_job(first, headers, j["id"], {"done", "failed"}) for j in jobs]
        assert {job["status"] for job in finished} == {"done"}


def test_an_unreachable_broker_is_a_503_and_leaves_no_job_waiting(
    api: Callable[..., Any],
) -> None:
    nowhere = f"amqp://guest:guest@127.0.0.1:{free_port()}//"
    with api(celery_broker_url=nowhere) as client:
        assert client.get("/health").json()["broker"] == "unreachable"
        headers = register(client, "alice")["headers"]
        image_id = upload_image(client, headers).json()["id"]
        refused = process(client, headers, image_id, [{"op": "invert"}])
        assert refused.status_code == 503
        assert refused.headers["Retry-After"]
        [job] = client.get("/jobs", headers=headers).json()["items"]
        assert (job["status"], job["error"]) == ("failed", BROKER_UNREACHABLE_ERROR)
