"""Metrics and logs of a real multi-worker server: scripts/start.sh with two uvicorn workers on
a fresh PostgreSQL database, requests spread over both workers (each answer names the worker
process that served it), then scrapes: every worker's scrape reports the sum over both."""

from __future__ import annotations

import json
import os
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.accounts import DEFAULT_PASSWORD, bearer, register
from tests.support.databases import fresh_postgres_database
from tests.support.deployment import Deployment, deployment_env, started_deployment
from tests.support.images import upload_image
from tests.support.metrics import METRICS_TOKEN, Scrape, scrape
from tests.support.processes import WorkerConnection, process_is_gone

pytestmark = pytest.mark.deployment

WORKERS = 2
REQUESTS = "pixelgate_http_requests_total"
STALE_FILE = "counter_1.db"


@pytest.fixture(scope="module")
def metrics_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("metrics")
    # What a previous run could leave: start.sh must empty the directory, or it would be summed.
    (directory / STALE_FILE).write_bytes(b"left over by an earlier run")
    return directory


@pytest.fixture(scope="module")
def served(
    postgres_server_url: str, metrics_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Deployment]:
    workdir = tmp_path_factory.mktemp("metered-deployment")
    with fresh_postgres_database(postgres_server_url) as database_url:
        env = deployment_env(
            database_url,
            workdir,
            WORKERS,
            METRICS_TOKEN=METRICS_TOKEN,
            LOG_FORMAT="json",
            PROMETHEUS_MULTIPROC_DIR=str(metrics_dir),
        )
        with started_deployment(env, database_url, workdir) as deployment:
            yield deployment


def _scrape(connection: WorkerConnection) -> Scrape:
    answer = connection.request("GET", "/metrics", headers=bearer(METRICS_TOKEN))
    assert answer.status == 200, answer.body
    return Scrape.parse(answer.body.decode())


def test_start_script_empties_the_metrics_directory(served: Deployment, metrics_dir: Path) -> None:
    assert not (metrics_dir / STALE_FILE).exists()
    # What is there now was written by the workers, one set of files each.
    workers = set(served.connections_on_every_worker(per_worker=1))
    writers = {int(path.stem.rsplit("_", 1)[1]) for path in metrics_dir.glob("*.db")}
    assert writers == workers


def test_every_worker_scrapes_the_sum_over_both(served: Deployment) -> None:
    by_worker = served.connections_on_every_worker(per_worker=2)
    connections = [c for pair in zip(*by_worker.values(), strict=True) for c in pair]
    before = _scrape(connections[0])
    served_by = set()
    for connection in connections:
        for _ in range(3):
            answer = connection.request("GET", "/health")
            assert answer.status == 200
            served_by.add(answer.worker_pid)
        assert connection.request("GET", "/images/777").status == 401
    assert served_by == set(by_worker)

    scrapes = {pid: _scrape(conns[0]) for pid, conns in by_worker.items()}
    for connection in connections:
        connection.close()
    for summed in scrapes.values():
        grown = summed.minus(before)
        assert grown.value(REQUESTS, route="/health", method="GET", status="200") == 3 * 4
        assert grown.value(REQUESTS, route="/images/{image_id}", method="GET", status="401") == 4
        assert summed.value("pixelgate_api_processes") == WORKERS
        assert summed.value("pixelgate_worker_processes") == WORKERS  # PROCESS_WORKERS=1 each


def test_logins_and_jobs_done_on_one_worker_are_scraped_from_the_other(
    served: Deployment,
) -> None:
    client = served.client()
    account = register(client, "metered")
    image_id = upload_image(client, account["headers"]).json()["id"]
    by_worker = served.connections_on_every_worker(per_worker=1)
    (first,), (second,) = by_worker.values()
    before = _scrape(second)

    good = {"username": "metered", "password": DEFAULT_PASSWORD}
    bad = {"username": "metered", "password": "Wrong!guess1"}
    for connection in (first, second):
        assert connection.request("POST", "/auth/login", good).status == 200
        assert connection.request("POST", "/auth/login", bad).status == 401
    job = first.request(
        "POST",
        f"/images/{image_id}/process",
        {"operations": [{"op": "invert"}]},
        account["headers"],
    )
    assert job.json()["status"] == "done", job.body

    after = _scrape(second)
    first.close()
    second.close()
    grown = after.minus(before)
    assert grown.value("pixelgate_logins_total", outcome="success") == 2
    assert grown.value("pixelgate_logins_total", outcome="bad_credentials") == 2
    assert grown.value("pixelgate_jobs_total", status="done") == 1
    assert grown.value("pixelgate_job_duration_seconds_count") == 1
    assert after.value("pixelgate_jobs_queued") == 0
    assert after.value("pixelgate_jobs_running") == 0


def test_the_token_rules_hold_on_every_worker(served: Deployment) -> None:
    by_worker = served.connections_on_every_worker(per_worker=1)
    for (connection,) in by_worker.values():
        anonymous = connection.request("GET", "/metrics")
        wrong = connection.request("GET", "/metrics", headers=bearer("not-the-token-012345"))
        connection.close()
        for answer in (anonymous, wrong):
            assert answer.status == 401
            assert answer.headers["www-authenticate"] == "Bearer"


def test_a_killed_worker_keeps_its_counts_and_leaves_the_gauges(served: Deployment) -> None:
    by_worker = served.connections_on_every_worker(per_worker=1)
    victim, survivor = sorted(by_worker)
    before = _scrape(by_worker[survivor][0])
    for (connection,) in by_worker.values():
        connection.close()

    os.kill(victim, signal.SIGKILL)
    assert process_is_gone(victim)
    # Two workers answer again: uvicorn replaced the dead one.
    by_worker = served.connections_on_every_worker(per_worker=1)
    assert victim not in by_worker
    for (connection,) in by_worker.values():
        connection.close()
    after = scrape(served.client())  # whichever worker answers: each scrapes the sum

    # The dead worker's counts stay in the sums; its live gauges do not.
    health = {"route": "/health", "method": "GET", "status": "200"}
    assert after.value(REQUESTS, **health) >= before.value(REQUESTS, **health)
    assert after.value("pixelgate_api_processes") == WORKERS
    assert after.value("pixelgate_worker_processes") == WORKERS


def _json_lines(text: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in text.splitlines() if line.startswith("{")]


def test_json_log_lines_of_every_worker_carry_the_request_id(served: Deployment) -> None:
    client = served.client()
    account = register(client, "logged_json")
    by_worker = served.connections_on_every_worker(per_worker=1)
    headers = {**account["headers"]}
    for pid, (connection,) in by_worker.items():
        answer = connection.request(
            "GET", "/auth/me", headers={**headers, "X-Request-ID": f"w{pid}"}
        )
        assert answer.status == 200
        connection.close()

    lines = _json_lines(served.log())
    access = {
        line["request_id"]: line
        for line in lines
        if line["logger"] == "pixelgate.access" and line["request_id"].startswith("w")
    }
    for pid in by_worker:
        line = access[f"w{pid}"]
        assert line["process"] == pid
        assert (line["route"], line["status"], line["user_id"]) == (
            "/auth/me",
            200,
            account["user"]["id"],
        )
        assert line["duration_ms"] >= 0
    # uvicorn's own lines in the workers are JSON too.
    assert any(
        line["logger"] == "uvicorn.error" and "startup complete" in line["message"]
        for line in lines
    )
    assert account["tokens"]["access_token"] not in served.log()
