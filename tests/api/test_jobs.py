"""Processing over HTTP: jobs, results, validation, the bounded queue, timeouts, dead workers."""

from __future__ import annotations

import io
import os
import signal
from collections.abc import Callable
from typing import Any

import pytest
from fastapi.testclient import TestClient
from PIL import Image as PILImage
from sqlalchemy import create_engine, select
from sqlalchemy.orm import Session

from api.models import Image, Job, JobStatus
from api.processing.worker import ProcessingResult
from api.services.jobs import SHUTDOWN_ERROR, JobSource, complete_job, fail_jobs
from api.services.server_instances import STALE_JOB_ERROR
from api.storage import new_key
from tests.support.accounts import AccountFactory, LoggedIn
from tests.support.databases import app_session
from tests.support.images import (
    SLOW,
    image_bytes,
    process,
    stored_keys,
    upload_image,
    wait_for_job,
)
from tests.support.processes import process_is_gone


@pytest.fixture
def alice(client: TestClient, accounts: AccountFactory) -> LoggedIn:
    return accounts.logged_in(client, "alice")


def test_process_with_wait_answers_the_finished_job_and_a_new_image(
    client: TestClient, alice: LoggedIn
) -> None:
    exif = PILImage.Exif()
    exif[0x8825] = {1: "N"}  # a GPS block
    source = upload_image(
        client,
        alice.headers,
        image_bytes("JPEG", size=(40, 30), color=(200, 40, 40), exif=exif.tobytes()),
        "cat.jpg",
        "image/jpeg",
    ).json()
    operations = [{"op": "grayscale"}, {"op": "resize", "width": 20}]

    response = process(client, alice.headers, source["id"], operations)
    assert response.status_code == 200, response.text
    job = response.json()
    assert job["status"] == "done", job
    assert job["image_id"] == source["id"]
    assert job["operations"] == operations
    assert job["error"] is None
    assert job["started_at"] and job["finished_at"] and job["duration_ms"] >= 0

    result = client.get(f"/images/{job['result_image_id']}", headers=alice.headers).json()
    assert result["source_image_id"] == source["id"]
    assert result["operations"] == operations
    assert (result["width"], result["height"], result["format"]) == (20, 15, "JPEG")
    assert result["filename"] == "cat-processed.jpg"
    content = client.get(f"/images/{result['id']}/content", headers=alice.headers)
    assert content.headers["x-content-type-options"] == "nosniff"
    pixels = PILImage.open(io.BytesIO(content.content))
    assert pixels.mode == "L"
    assert len(pixels.getexif()) == 0  # no GPS leaves with a result
    listed = client.get("/images", headers=alice.headers).json()
    assert listed["total"] == 2


def test_process_without_wait_answers_202_and_the_job_can_be_polled(
    client: TestClient, alice: LoggedIn
) -> None:
    image_id = upload_image(client, alice.headers).json()["id"]
    response = process(client, alice.headers, image_id, [{"op": "invert"}], wait=False)
    assert response.status_code == 202
    assert response.json()["status"] in ("queued", "running")
    job = wait_for_job(client, alice.headers, response.json()["id"], {"done", "failed"})
    assert job["status"] == "done", job
    assert job["result_image_id"] is not None


def test_batch_queues_one_job_per_image(client: TestClient, alice: LoggedIn) -> None:
    uploaded = [upload_image(client, alice.headers).json()["id"] for _ in range(3)]
    ids = uploaded[::-1]  # the jobs follow the order asked, not the ids'
    response = client.post(
        "/images/process-batch",
        json={"image_ids": ids, "operations": [{"op": "sepia"}]},
        headers=alice.headers,
    )
    assert response.status_code == 202, response.text
    jobs = response.json()["jobs"]
    assert [job["image_id"] for job in jobs] == ids
    finished = [wait_for_job(client, alice.headers, job["id"], {"done", "failed"}) for job in jobs]
    assert {job["status"] for job in finished} == {"done"}
    assert len({job["result_image_id"] for job in finished}) == 3


@pytest.mark.parametrize(
    ("operations", "problem"),
    [
        ([{"op": "melt"}], "does not match any of the expected tags"),
        ([{"op": "blur", "radius": 99}], "less than or equal to 50"),
        ([{"op": "threshold"}], "Field required"),
        ([{"op": "invert"}] * 11, "at most 10"),
        ([], "at least 1"),
    ],
)
def test_bad_operations_are_a_422_and_nothing_is_queued(
    client: TestClient, alice: LoggedIn, operations: list[Any], problem: str
) -> None:
    image_id = upload_image(client, alice.headers).json()["id"]
    single = process(client, alice.headers, image_id, operations)
    batch = client.post(
        "/images/process-batch",
        json={"image_ids": [image_id], "operations": operations},
        headers=alice.headers,
    )
    for response in (single, batch):
        assert response.status_code == 422
        assert problem in str(response.json()["detail"])
    assert client.get("/jobs", headers=alice.headers).json()["total"] == 0


def test_a_pipeline_making_too_many_pixels_is_a_422(
    make_client: Callable[..., Any],
    accounts: AccountFactory,
) -> None:
    with make_client(max_image_pixels=1_000_000) as client:
        headers = accounts.logged_in(client, "alice").headers
        image_id = upload_image(client, headers).json()["id"]
        response = process(client, headers, image_id, [{"op": "resize", "width": 2000}])
        assert response.status_code == 422
        [error] = response.json()["detail"]
        assert error["loc"] == ["body", "operations"]
        assert "over the limit of 1000000 pixels" in error["msg"]
        assert client.get("/jobs", headers=headers).json()["total"] == 0


def test_a_batch_is_all_or_nothing(
    client: TestClient, alice: LoggedIn, accounts: AccountFactory
) -> None:
    bob = accounts.logged_in(client, "bob_b")
    mine = upload_image(client, alice.headers).json()["id"]
    theirs = upload_image(client, bob.headers).json()["id"]
    operations = [{"op": "invert"}]
    cases = (
        ([mine, theirs], 403),
        ([mine, 987654], 404),
        ([theirs, 987654], 403),  # the first image at fault decides
        ([987654, theirs], 404),
        ([mine, mine], 422),
    )
    for image_ids, status in cases:
        response = client.post(
            "/images/process-batch",
            json={"image_ids": image_ids, "operations": operations},
            headers=alice.headers,
        )
        assert response.status_code == status, response.text
    assert client.get("/jobs", headers=alice.headers).json()["total"] == 0


def test_jobs_are_the_callers_only_and_filter_by_status(
    client: TestClient, alice: LoggedIn, accounts: AccountFactory
) -> None:
    bob = accounts.logged_in(client, "bob_b")
    image_id = upload_image(client, alice.headers).json()["id"]
    done = process(client, alice.headers, image_id, [{"op": "invert"}]).json()
    failed = process(client, alice.headers, image_id, [{"op": "rotate", "angle": 45}]).json()
    with app_session(client) as db:  # as if it had failed
        db.get(Job, failed["id"]).status = JobStatus.FAILED.value
        db.commit()

    listed = client.get("/jobs", headers=alice.headers).json()
    assert [job["id"] for job in listed["items"]] == [failed["id"], done["id"]]
    only_done = client.get("/jobs?status=done", headers=alice.headers).json()
    assert [job["id"] for job in only_done["items"]] == [done["id"]]
    assert client.get("/jobs?status=lost", headers=alice.headers).status_code == 422

    assert client.get("/jobs", headers=bob.headers).json()["total"] == 0
    assert client.get(f"/jobs/{done['id']}", headers=bob.headers).status_code == 403
    assert client.get("/jobs/987654", headers=bob.headers).status_code == 404


@pytest.mark.local_processing
def test_a_full_queue_is_a_503_with_retry_after_and_shutdown_fails_what_is_cut_off(
    make_client: Callable[..., Any], database_url: str, accounts: AccountFactory
) -> None:
    with make_client(process_workers=1, max_queued_jobs=1) as client:
        headers = accounts.logged_in(client, "alice").headers
        image_id = upload_image(client, headers).json()["id"]
        running = process(client, headers, image_id, SLOW, wait=False).json()
        wait_for_job(client, headers, running["id"], {"running"})
        queued = process(client, headers, image_id, [{"op": "invert"}], wait=False)
        assert queued.status_code == 202

        refused = process(client, headers, image_id, [{"op": "invert"}], wait=False)
        assert refused.status_code == 503
        assert int(refused.headers["Retry-After"]) >= 1
        assert "queue is full" in refused.json()["detail"]
        batch = client.post(
            "/images/process-batch",
            json={"image_ids": [image_id], "operations": [{"op": "invert"}]},
            headers=headers,
        )
        assert batch.status_code == 503
        assert client.get("/jobs", headers=headers).json()["total"] == 2
        worker_pids = client.app.state.processing.worker_pids

    # The app has stopped: the running and the queued job were failed, the worker stopped.
    engine = create_engine(database_url)
    with Session(engine) as db:
        jobs = db.scalars(select(Job).order_by(Job.id)).all()
    engine.dispose()
    assert [(job.status, job.error) for job in jobs] == [("failed", SHUTDOWN_ERROR)] * 2
    assert worker_pids
    assert all(process_is_gone(pid) for pid in worker_pids)


def test_a_job_over_the_timeout_fails_and_leaves_no_result(
    make_client: Callable[..., Any], accounts: AccountFactory
) -> None:
    # Long enough for a small job's whole task under Celery on a loaded machine (claim,
    # download, upload, record); SLOW takes far longer.
    with make_client(job_timeout_s=3) as client:
        headers = accounts.logged_in(client, "alice").headers
        image_id = upload_image(client, headers).json()["id"]
        response = process(client, headers, image_id, SLOW)
        assert response.status_code == 200  # finished, if not well
        job = response.json()
        assert job["status"] == "failed"
        assert "longer than 3 s" in job["error"]
        assert job["result_image_id"] is None
        assert client.get("/images", headers=headers).json()["total"] == 1
        assert len(stored_keys(client)) == 1

        after = process(client, headers, image_id, [{"op": "invert"}]).json()
        assert after["status"] == "done"


@pytest.mark.local_processing
def test_a_killed_worker_fails_its_job_and_the_next_job_succeeds(
    make_client: Callable[..., Any],
    accounts: AccountFactory,
) -> None:
    with make_client(process_workers=1) as client:
        headers = accounts.logged_in(client, "alice").headers
        image_id = upload_image(client, headers).json()["id"]
        doomed = process(client, headers, image_id, SLOW, wait=False).json()
        wait_for_job(client, headers, doomed["id"], {"running"})
        [pid] = client.app.state.processing.running_tasks
        os.kill(pid, signal.SIGKILL)

        failed = wait_for_job(client, headers, doomed["id"], {"done", "failed"})
        assert failed["status"] == "failed"
        assert "stopped unexpectedly" in failed["error"]

        after = process(client, headers, image_id, [{"op": "flip", "direction": "vertical"}])
        assert after.json()["status"] == "done"
        assert pid not in client.app.state.processing.worker_pids


def test_jobs_left_unfinished_by_a_stopped_server_are_failed_at_start(
    make_client: Callable[..., Any],
    accounts: AccountFactory,
) -> None:
    with make_client() as client:
        headers = accounts.logged_in(client, "alice").headers
        image_id = upload_image(client, headers).json()["id"]
        done = process(client, headers, image_id, [{"op": "invert"}]).json()
        with app_session(client) as db:
            owner_id = db.get(Job, done["id"]).owner_id
            for status in (JobStatus.QUEUED, JobStatus.RUNNING):
                db.add(Job(owner_id=owner_id, image_id=image_id, status=status, operations=[]))
            db.commit()

    with make_client() as client:
        jobs = {job["id"]: job for job in client.get("/jobs", headers=headers).json()["items"]}
    assert jobs[done["id"]]["status"] == "done"
    stale = [job for job_id, job in jobs.items() if job_id != done["id"]]
    assert [(job["status"], job["error"]) for job in stale] == [("failed", STALE_JOB_ERROR)] * 2


def _running_job_with_result_file(client: TestClient, image_id: int) -> tuple[int, str]:
    """A job row marked running and a result file on disk, as a worker would leave them."""
    key = new_key("png")
    with client.app.state.storage.writing(key) as path:
        path.write_bytes(image_bytes())
    with app_session(client) as db:
        owner_id = db.get(Image, image_id).owner_id
        job = Job(owner_id=owner_id, image_id=image_id, status="running", operations=[])
        db.add(job)
        db.commit()
        return job.id, key


def _finish(client: TestClient, job_id: int, image_id: int, key: str) -> None:
    source = JobSource(image_id, "unused", "cat.png", "PNG")
    result = ProcessingResult(24, 16, 100, "PNG", "image/png", 1)
    app = client.app
    complete_job(app.state.database, app.state.storage, job_id, source, key, result)


def test_a_result_whose_source_was_deleted_meanwhile_is_discarded(
    client: TestClient, alice: LoggedIn
) -> None:
    image_id = upload_image(client, alice.headers).json()["id"]
    job_id, key = _running_job_with_result_file(client, image_id)
    assert client.delete(f"/images/{image_id}", headers=alice.headers).status_code == 204

    _finish(client, job_id, image_id, key)
    job = client.get(f"/jobs/{job_id}", headers=alice.headers).json()
    assert job["status"] == "failed"
    assert job["error"] == "The source image was deleted while the job ran"
    assert job["result_image_id"] is None
    assert client.get("/images", headers=alice.headers).json()["total"] == 0
    assert not client.app.state.storage.exists(key)


def test_a_result_for_a_job_failed_meanwhile_is_discarded(
    client: TestClient, alice: LoggedIn
) -> None:
    image_id = upload_image(client, alice.headers).json()["id"]
    job_id, key = _running_job_with_result_file(client, image_id)
    fail_jobs(client.app.state.database, [job_id], STALE_JOB_ERROR)  # e.g. another server's start

    _finish(client, job_id, image_id, key)
    job = client.get(f"/jobs/{job_id}", headers=alice.headers).json()
    assert (job["status"], job["error"]) == ("failed", STALE_JOB_ERROR)
    assert client.get("/images", headers=alice.headers).json()["total"] == 1
    assert not client.app.state.storage.exists(key)
