"""Several API processes on one database: each fails only the jobs of instances that stopped
or went silent, never a live sibling's (uvicorn restarting one of its workers, a rolling
restart, another host)."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from sqlalchemy import select

from api.models import Job, JobStatus, ServerInstance, utcnow
from api.services.server_instances import STALE_JOB_ERROR
from tests.support.accounts import AccountFactory
from tests.support.databases import app_session
from tests.support.images import SLOW, process, upload_image, wait_for_job


def test_a_starting_server_leaves_a_live_siblings_running_job_alone(
    make_client: Callable[..., Any],
    accounts: AccountFactory,
) -> None:
    with make_client(process_workers=1) as first:
        headers = accounts.logged_in(first, "alice").headers
        image_id = upload_image(first, headers).json()["id"]
        job = process(first, headers, image_id, SLOW, wait=False).json()
        wait_for_job(first, headers, job["id"], {"running"})

        with make_client(process_workers=1) as sibling:
            seen_by_sibling = sibling.get(f"/jobs/{job['id']}", headers=headers).json()
        assert seen_by_sibling["status"] == "running"

        finished = wait_for_job(first, headers, job["id"], {"done", "failed"})
        assert finished["status"] == "done", finished["error"]


def test_jobs_of_a_silent_server_are_failed_by_a_live_one(
    make_client: Callable[..., Any],
    accounts: AccountFactory,
) -> None:
    with make_client(job_heartbeat_s=0.1) as client:
        headers = accounts.logged_in(client, "alice").headers
        image_id = upload_image(client, headers).json()["id"]
        with app_session(client) as db:
            owner_id = db.scalar(select(Job.owner_id).limit(1)) or 1
            crashed = ServerInstance(
                id="c" * 32, hostname="gone", pid=1, heartbeat_at=utcnow() - timedelta(minutes=5)
            )
            db.add(crashed)
            db.flush()
            orphan = Job(
                owner_id=owner_id,
                image_id=image_id,
                status=JobStatus.RUNNING.value,
                operations=[],
                server_id=crashed.id,
                started_at=utcnow() - timedelta(minutes=1),
            )
            db.add(orphan)
            db.commit()
            orphan_id = orphan.id

        # Nothing restarts: the live instance's periodic heartbeat finds the orphan.
        failed = wait_for_job(client, headers, orphan_id, {"failed"})
        assert failed["error"] == STALE_JOB_ERROR
        assert failed["duration_ms"] >= 60_000  # it ran until its server was found gone


def test_an_instance_beats_while_running_and_is_marked_stopped_on_shutdown(
    make_client: Callable[..., Any],
) -> None:
    with make_client(job_heartbeat_s=0.05) as client:
        server_id = client.app.state.job_runner.server_id
        deadline = time.monotonic() + 60  # only keeps a broken build from hanging
        while time.monotonic() < deadline:
            with app_session(client) as db:
                instance = db.get_one(ServerInstance, server_id)
                if instance.heartbeat_at > instance.started_at and instance.stopped_at is None:
                    break
            time.sleep(0.05)
        else:
            raise AssertionError("the instance never sent a heartbeat")
        database = client.app.state.database

    with database.session() as db:
        assert db.get_one(ServerInstance, server_id).stopped_at is not None
