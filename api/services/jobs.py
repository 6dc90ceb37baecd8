"""Processing jobs: validated and queued as rows, and their status changes.

A job row goes `queued → running → done | failed`. Every status change is a conditional
update from the expected previous status, so a job failed by someone else (a sweep at start-up,
the shutdown) is never brought back to life. A finished job's result is a new image of the same
owner naming its source and operations; if that cannot be saved, the job fails and its object
is removed.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import PurePosixPath
from typing import Any

from sqlalchemy import ColumnElement, Select, Update, func, select, update
from sqlalchemy.orm import Session

from api.core.config import Settings
from api.core.db import Database, after_commit, writes
from api.core.metrics import observe_job_finished
from api.models import Job, JobStatus, User, utcnow
from api.processing.imaging import EXTENSIONS, result_format
from api.processing.operations import Operation, dump_pipeline, largest_size
from api.processing.worker import ProcessingResult
from api.repositories.pagination import fetch_page
from api.schemas.common import PageParams
from api.schemas.event import EventType
from api.services.errors import RuleViolation, ServiceBusy
from api.services.events import record_event
from api.services.images import MAX_FILENAME_LENGTH, add_image, ensure_stored, get_owned_images
from api.services.ownership import get_owned
from api.storage import Storage

SHUTDOWN_ERROR = "The server was stopped before this job finished; submit it again"
SOURCE_DELETED_ERROR = "The source image was deleted while the job ran"
UNFINISHED = (JobStatus.QUEUED.value, JobStatus.RUNNING.value)
# Serialises the cluster-wide queue count of concurrent submissions (PostgreSQL advisory lock).
QUEUE_ADMISSION_LOCK = 0x5049_5847_4A4F_4253  # "PIXGJOBS"
RECENT_JOBS_FOR_ESTIMATE = 50
MAX_RETRY_AFTER_S = 300


@dataclass(frozen=True, slots=True)
class JobSource:
    """What a job needs to know about its source image, read once when it is queued."""

    image_id: int
    storage_key: str
    filename: str
    output_format: str


# --- queries --------------------------------------------------------------------------------


def get_owned_job(db: Session, user: User, job_id: int) -> Job:
    return get_owned(db, Job, user, job_id, "job")


def jobs_page(
    db: Session, user: User, page: PageParams, status: JobStatus | None = None
) -> tuple[list[Job], int]:
    statement: Select[tuple[Job]] = select(Job).where(Job.owner_id == user.id)
    if status is not None:
        statement = statement.where(Job.status == status.value)
    statement = statement.order_by(Job.created_at.desc(), Job.id.desc())
    return fetch_page(db, statement, page)


# --- queueing -------------------------------------------------------------------------------


def plan_jobs(
    db: Session,
    storage: Storage,
    settings: Settings,
    owner: User,
    image_ids: Sequence[int],
    operations: Sequence[Operation],
) -> list[JobSource]:
    """Checks every image before anything is queued (all or nothing): 404 for an unknown
    image, 403 for another user's, 422 when the pipeline would exceed MAX_IMAGE_PIXELS."""
    images = get_owned_images(db, owner, image_ids)
    sources = []
    for image in images:
        ensure_stored(storage, image)
        width, height = largest_size((image.width, image.height), operations)
        if width * height > settings.max_image_pixels:
            raise RuleViolation(
                "operations",
                f"On image {image.id} these operations would make a {width}×{height} image, "
                f"over the limit of {settings.max_image_pixels} pixels",
            )
        sources.append(
            JobSource(image.id, image.storage_key, image.filename, result_format(image.format))
        )
    return sources


def create_jobs(
    db: Session,
    owner: User,
    sources: Sequence[JobSource],
    operations: Sequence[Operation],
    server_id: str | None = None,
    max_queued: int | None = None,
) -> list[Job]:
    """Writes one queued row per source, all or none. With `max_queued`, the jobs waiting in
    the whole cluster (this table) are counted in the same transaction, after the new rows, and
    more than `max_queued` refuses the lot with ServiceBusy (503 + Retry-After). On PostgreSQL
    a transaction-scoped advisory lock makes concurrent submissions count one after another; on
    SQLite the first insert takes the database's write lock, which does the same."""
    stored_operations = dump_pipeline(operations)
    jobs = [
        Job(
            owner_id=owner.id,
            image_id=source.image_id,
            status=JobStatus.QUEUED.value,
            operations=stored_operations,
            server_id=server_id,
        )
        for source in sources
    ]
    with writes(db):
        if max_queued is not None and db.get_bind().dialect.name == "postgresql":
            db.execute(select(func.pg_advisory_xact_lock(QUEUE_ADMISSION_LOCK)))
        db.add_all(jobs)
        db.flush()
        if max_queued is not None:
            _admit_within(db, max_queued)
    return jobs


def _admit_within(db: Session, max_queued: int) -> None:
    queued = db.scalar(select(func.count()).where(Job.status == JobStatus.QUEUED.value)) or 0
    if queued <= max_queued:
        return
    running = db.scalar(select(func.count()).where(Job.status == JobStatus.RUNNING.value)) or 0
    recent = (
        select(Job.duration_ms)
        .where(Job.status == JobStatus.DONE.value, Job.duration_ms.is_not(None))
        .order_by(Job.id.desc())
        .limit(RECENT_JOBS_FOR_ESTIMATE)
        .subquery()
    )
    average_ms = db.scalar(select(func.avg(recent.c.duration_ms))) or 1000
    estimate = math.ceil(max_queued * float(average_ms) / 1000 / max(running, 1))
    raise ServiceBusy(
        f"The processing queue is full (at most {max_queued} jobs may wait); try again later",
        retry_after=max(1, min(MAX_RETRY_AFTER_S, estimate)),
    )


# --- status changes -------------------------------------------------------------------------


def update_jobs(*conditions: ColumnElement[bool]) -> Update:
    """An UPDATE of the jobs matching `conditions`. The short sessions that run it hold no
    Job objects to keep in step, so SQLAlchemy is told not to look for any."""
    return update(Job).where(*conditions).execution_options(synchronize_session=False)


def mark_running(database: Database, job_id: int, server_id: str | None = None) -> bool:
    """Claims a queued job for running (by `server_id`, when the runner is another instance
    than the one that queued it); False if it is no longer queued."""
    values: dict[str, Any] = {"status": JobStatus.RUNNING.value, "started_at": utcnow()}
    if server_id is not None:
        values["server_id"] = server_id
    with database.session() as db, writes(db):
        result = db.execute(
            update_jobs(Job.id == job_id, Job.status == JobStatus.QUEUED.value).values(values)
        )
        return bool(result.rowcount)  # type: ignore[attr-defined]


def finished_job_ids(database: Database, job_ids: Sequence[int]) -> set[int]:
    """Which of these jobs are done or failed (one query, however many are asked about)."""
    with database.session() as db:
        return set(
            db.scalars(select(Job.id).where(Job.id.in_(job_ids), Job.status.not_in(UNFINISHED)))
        )


def record_job_finished(
    db: Session,
    job_id: int,
    image_id: int | None,
    owner_id: int,
    *,
    started_at: datetime | None,
    finished_at: datetime,
    result_image_id: int | None = None,
    error: str | None = None,
) -> None:
    """The one place a job reaching done or failed is recorded, in the unit of work that
    finishes it: `job.done` or `job.failed`, and (once that commits) `pixelgate_jobs_total`
    with the run time when it ran."""
    data = {"job_id": job_id, "image_id": image_id, "user_id": owner_id}
    if error is None:
        record_event(db, EventType.JOB_DONE, {**data, "result_image_id": result_image_id})
    else:
        record_event(db, EventType.JOB_FAILED, {**data, "error": error})
    status = JobStatus.DONE.value if error is None else JobStatus.FAILED.value
    run_seconds = None if started_at is None else (finished_at - started_at).total_seconds()
    after_commit(db, lambda: observe_job_finished(status, run_seconds))


def _milliseconds_between(started: datetime, finished: datetime) -> int:
    return round((finished - started).total_seconds() * 1000)


def fail_unfinished_jobs(db: Session, message: str, *conditions: ColumnElement[bool]) -> list[int]:
    """Fails the queued or running jobs matching `conditions`, in the caller's unit of work;
    returns their ids. The one way a job fails from outside its run (a timeout, a lost worker
    or broker, a server that stopped): recorded as finished, with its run time if it ran."""
    now = utcnow()
    failed = db.execute(
        update_jobs(Job.status.in_(UNFINISHED), *conditions)
        .values(status=JobStatus.FAILED.value, error=message, finished_at=now)
        .returning(Job.id, Job.started_at, Job.image_id, Job.owner_id)
    ).all()
    for job_id, started_at, image_id, owner_id in failed:
        record_job_finished(
            db, job_id, image_id, owner_id, started_at=started_at, finished_at=now, error=message
        )
        if started_at is not None:
            db.execute(
                update_jobs(Job.id == job_id).values(
                    duration_ms=_milliseconds_between(started_at, now)
                )
            )
    return [row[0] for row in failed]


def fail_jobs(database: Database, job_ids: Sequence[int], message: str) -> list[int]:
    """Fails these jobs unless they are already finished; returns the ids it failed."""
    with database.session() as db, writes(db):
        return fail_unfinished_jobs(db, message, Job.id.in_(job_ids))


def complete_job(
    database: Database,
    storage: Storage,
    job_id: int,
    source: JobSource,
    result_key: str,
    result: ProcessingResult,
) -> None:
    """Records the result as a new image and the job as done, in one transaction; the result
    object is removed if that cannot happen."""
    now = utcnow()
    try:
        with database.session() as db, writes(db):
            # The first statement writes: it claims the job (and SQLite's write lock) at once.
            claimed = db.execute(
                update_jobs(Job.id == job_id, Job.status == JobStatus.RUNNING.value)
                .values(status=JobStatus.DONE.value, finished_at=now)
                .returning(Job.owner_id, Job.image_id, Job.operations, Job.started_at)
            ).one_or_none()
            if claimed is None:  # failed meanwhile (shutdown, another server's start-up)
                storage.delete(result_key)
                return
            owner_id, image_id, operations, started_at = claimed
            outcome: dict[str, Any] = {}
            if started_at is not None:
                outcome["duration_ms"] = _milliseconds_between(started_at, now)
            if image_id is None:  # the source was deleted (ON DELETE SET NULL)
                outcome["status"] = JobStatus.FAILED.value
                outcome["error"] = SOURCE_DELETED_ERROR
                storage.delete(result_key)
            else:
                image = add_image(
                    db,
                    storage,
                    owner_id=owner_id,
                    key=result_key,
                    filename=_result_filename(source.filename, result.format),
                    image_format=result.format,
                    width=result.width,
                    height=result.height,
                    size_bytes=result.size_bytes,
                    source_image_id=image_id,
                    operations=operations,
                )
                outcome["result_image_id"] = image.id
            db.execute(update_jobs(Job.id == job_id).values(outcome))
            record_job_finished(
                db,
                job_id,
                image_id,
                owner_id,
                started_at=started_at,
                finished_at=now,
                result_image_id=outcome.get("result_image_id"),
                error=outcome.get("error"),
            )
    except BaseException:
        storage.delete(result_key)
        raise


def _result_filename(source_filename: str, image_format: str) -> str:
    stem = PurePosixPath(source_filename).stem or "image"
    suffix = f"-processed.{EXTENSIONS[image_format]}"
    return stem[: MAX_FILENAME_LENGTH - len(suffix)] + suffix
