"""Processing jobs: validated and queued as rows, and their status changes.

A job row goes `queued → running → done | failed`. Every status change is a conditional
update from the expected previous status, so a job failed by someone else (a sweep at start-up,
the shutdown) is never brought back to life. A finished job's result is a new image of the same
owner naming its source and operations; if that cannot be saved, the job fails and its object
is removed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import PurePosixPath
from typing import Any

from sqlalchemy import ColumnElement, Select, Update, select, update
from sqlalchemy.orm import Session

from api.core.config import Settings
from api.core.db import Database, writes
from api.models import Job, JobStatus, User, utcnow
from api.processing.imaging import EXTENSIONS, result_format
from api.processing.operations import Operation, dump_pipeline, largest_size
from api.processing.worker import ProcessingResult
from api.repositories.pagination import fetch_page
from api.schemas.common import PageParams
from api.services.errors import RuleViolation
from api.services.images import MAX_FILENAME_LENGTH, add_image, ensure_stored, get_owned_images
from api.services.ownership import get_owned
from api.storage import Storage

SHUTDOWN_ERROR = "The server was stopped before this job finished; submit it again"
SOURCE_DELETED_ERROR = "The source image was deleted while the job ran"
UNFINISHED = (JobStatus.QUEUED.value, JobStatus.RUNNING.value)


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
) -> list[Job]:
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
        db.add_all(jobs)
    return jobs


# --- status changes -------------------------------------------------------------------------


def update_jobs(*conditions: ColumnElement[bool]) -> Update:
    """An UPDATE of the jobs matching `conditions`. The short sessions that run it hold no
    Job objects to keep in step, so SQLAlchemy is told not to look for any."""
    return update(Job).where(*conditions).execution_options(synchronize_session=False)


def mark_running(database: Database, job_id: int) -> bool:
    with database.session() as db, writes(db):
        result = db.execute(
            update_jobs(Job.id == job_id, Job.status == JobStatus.QUEUED.value).values(
                status=JobStatus.RUNNING.value, started_at=utcnow()
            )
        )
        return bool(result.rowcount)  # type: ignore[attr-defined]


def _milliseconds_between(started: datetime, finished: datetime) -> int:
    return round((finished - started).total_seconds() * 1000)


def fail_jobs(database: Database, job_ids: Sequence[int], message: str) -> None:
    """Fails these jobs unless they are already finished."""
    now = utcnow()
    with database.session() as db, writes(db):
        failed = db.execute(
            update_jobs(Job.id.in_(job_ids), Job.status.in_(UNFINISHED))
            .values(status=JobStatus.FAILED.value, error=message, finished_at=now)
            .returning(Job.id, Job.started_at)
        ).all()
        for job_id, started_at in failed:
            if started_at is not None:
                db.execute(
                    update_jobs(Job.id == job_id).values(
                        duration_ms=_milliseconds_between(started_at, now)
                    )
                )


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
    except BaseException:
        storage.delete(result_key)
        raise


def _result_filename(source_filename: str, image_format: str) -> str:
    stem = PurePosixPath(source_filename).stem or "image"
    suffix = f"-processed.{EXTENSIONS[image_format]}"
    return stem[: MAX_FILENAME_LENGTH - len(suffix)] + suffix
