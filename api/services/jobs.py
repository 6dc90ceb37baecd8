"""Processing jobs: validated and queued as rows, run by the engine, finished as new images.

A job row goes `queued → running → done | failed`. Every status change is a conditional
update from the expected previous status, so a job failed by someone else (a sweep at start-up,
the shutdown) is never brought back to life. A finished job's result is a new image of the same
owner naming its source and operations; if that cannot be saved, the job fails and its file is
removed.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path, PurePosixPath
from typing import Any

from sqlalchemy import ColumnElement, Select, Update, delete, or_, select, update
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from api.core.config import Settings
from api.core.db import Database, end_read_transaction
from api.models import Image, Job, JobStatus, ServerInstance, User, utcnow
from api.repositories.pagination import fetch_page
from api.schemas.common import PageParams
from api.schemas.event import EventType
from api.services.errors import RuleViolation
from api.services.events import record_event
from api.services.images import (
    MAX_FILENAME_LENGTH,
    get_owned_images,
    image_path,
    storage_for,
)
from api.services.ownership import get_owned
from api.services.processing.engine import ProcessingEngine, TaskFailed
from api.services.processing.imaging import EXTENSIONS, result_format
from api.services.processing.operations import Operation, dump_pipeline, largest_size
from api.services.processing.worker import ProcessingResult, ProcessingTask

log = logging.getLogger("pixelgate.jobs")

STALE_JOB_ERROR = "The server stopped before this job finished; submit it again"
SHUTDOWN_ERROR = "The server was stopped before this job finished; submit it again"
UNFINISHED = (JobStatus.QUEUED.value, JobStatus.RUNNING.value)
# A server instance missing this many heartbeats in a row is taken for dead.
MISSED_HEARTBEATS = 3
# Rows of instances silent for this long are forgotten (their jobs were failed long before).
FORGET_INSTANCES_AFTER = timedelta(days=1)


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
        image_path(settings, image)  # 404 if its file is gone
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
    end_read_transaction(db)
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
    db.add_all(jobs)
    db.commit()
    return jobs


# --- status changes -------------------------------------------------------------------------


def register_server(database: Database) -> str:
    """Records this API process as a live server instance; returns its id."""
    server_id = uuid.uuid4().hex
    with database.session() as db:
        db.add(ServerInstance(id=server_id, hostname=socket.gethostname()[:255], pid=os.getpid()))
        db.commit()
    return server_id


def beat(database: Database, server_id: str) -> None:
    with database.session() as db:
        db.execute(
            update(ServerInstance)
            .where(ServerInstance.id == server_id)
            .values(heartbeat_at=utcnow())
        )
        db.commit()


def mark_server_stopped(database: Database, server_id: str) -> None:
    with database.session() as db:
        db.execute(
            update(ServerInstance).where(ServerInstance.id == server_id).values(stopped_at=utcnow())
        )
        db.commit()


def fail_stale_jobs(db: Session, heartbeat_s: float) -> int:
    """Fails queued or running jobs whose server stopped or missed its heartbeats.

    Jobs of live instances (this one, sibling workers, other hosts) are left alone, so any
    process may run this at start-up and then periodically. Jobs naming no instance predate
    instance tracking, or lost theirs, and are failed too.
    """
    now = utcnow()
    dead_servers = select(ServerInstance.id).where(
        or_(
            ServerInstance.stopped_at.is_not(None),
            ServerInstance.heartbeat_at < now - timedelta(seconds=heartbeat_s * MISSED_HEARTBEATS),
        )
    )
    failed = db.execute(
        _update_jobs(
            Job.status.in_(UNFINISHED),
            or_(Job.server_id.is_(None), Job.server_id.in_(dead_servers)),
        )
        .values(status=JobStatus.FAILED.value, error=STALE_JOB_ERROR, finished_at=now)
        .returning(Job.id, Job.image_id, Job.owner_id)
    ).all()
    for job_id, image_id, owner_id in failed:
        _record_job_finished(db, job_id, image_id, owner_id, error=STALE_JOB_ERROR)
    db.execute(
        delete(ServerInstance).where(ServerInstance.heartbeat_at < now - FORGET_INSTANCES_AFTER)
    )
    db.commit()
    count = len(failed)
    if count:
        log.warning("failed %s job(s) left unfinished by a server that stopped", count)
    return count


def _update_jobs(*conditions: ColumnElement[bool]) -> Update:
    """An UPDATE of the jobs matching `conditions`. The short sessions that run it hold no
    Job objects to keep in step, so SQLAlchemy is told not to look for any."""
    return update(Job).where(*conditions).execution_options(synchronize_session=False)


def mark_running(database: Database, job_id: int) -> bool:
    with database.session() as db:
        result = db.execute(
            _update_jobs(Job.id == job_id, Job.status == JobStatus.QUEUED.value).values(
                status=JobStatus.RUNNING.value, started_at=utcnow()
            )
        )
        db.commit()
        return bool(result.rowcount)  # type: ignore[attr-defined]


def _record_job_finished(
    db: Session,
    job_id: int,
    image_id: int | None,
    owner_id: int,
    *,
    result_image_id: int | None = None,
    error: str | None = None,
) -> None:
    """`job.done` or `job.failed`, in the transaction that finishes the job."""
    data = {"job_id": job_id, "image_id": image_id, "user_id": owner_id}
    if error is None:
        record_event(db, EventType.JOB_DONE, {**data, "result_image_id": result_image_id})
    else:
        record_event(db, EventType.JOB_FAILED, {**data, "error": error})


def _milliseconds_between(started: datetime, finished: datetime) -> int:
    return round((finished - started).total_seconds() * 1000)


def fail_jobs(database: Database, job_ids: Sequence[int], message: str) -> None:
    """Fails these jobs unless they are already finished."""
    now = utcnow()
    with database.session() as db:
        failed = db.execute(
            _update_jobs(Job.id.in_(job_ids), Job.status.in_(UNFINISHED))
            .values(status=JobStatus.FAILED.value, error=message, finished_at=now)
            .returning(Job.id, Job.started_at, Job.image_id, Job.owner_id)
        ).all()
        for job_id, started_at, image_id, owner_id in failed:
            _record_job_finished(db, job_id, image_id, owner_id, error=message)
            if started_at is not None:
                db.execute(
                    _update_jobs(Job.id == job_id).values(
                        duration_ms=_milliseconds_between(started_at, now)
                    )
                )
        db.commit()


def complete_job(
    database: Database,
    settings: Settings,
    job_id: int,
    source: JobSource,
    result_key: str,
    result: ProcessingResult,
) -> None:
    """Records the result as a new image and the job as done, in one transaction; the result
    file is removed if that cannot happen."""
    storage = storage_for(settings)
    now = utcnow()
    try:
        with database.session() as db:
            # The first statement writes: it claims the job (and SQLite's write lock) at once.
            claimed = db.execute(
                _update_jobs(Job.id == job_id, Job.status == JobStatus.RUNNING.value)
                .values(status=JobStatus.DONE.value, finished_at=now)
                .returning(Job.owner_id, Job.image_id, Job.operations, Job.started_at)
            ).one_or_none()
            if claimed is None:
                db.rollback()  # failed meanwhile (shutdown, another server's start-up)
                storage.delete(result_key)
                return
            owner_id, image_id, operations, started_at = claimed
            outcome: dict[str, Any] = {}
            if started_at is not None:
                outcome["duration_ms"] = _milliseconds_between(started_at, now)
            if image_id is None:  # the source was deleted (ON DELETE SET NULL)
                outcome["status"] = JobStatus.FAILED.value
                outcome["error"] = "The source image was deleted while the job ran"
                storage.delete(result_key)
            else:
                image = Image(
                    owner_id=owner_id,
                    filename=_result_filename(source.filename, result.format),
                    storage_key=result_key,
                    format=result.format,
                    media_type=result.media_type,
                    width=result.width,
                    height=result.height,
                    size_bytes=result.size_bytes,
                    source_image_id=image_id,
                    operations=operations,
                )
                db.add(image)
                db.flush()
                outcome["result_image_id"] = image.id
            db.execute(_update_jobs(Job.id == job_id).values(outcome))
            _record_job_finished(
                db,
                job_id,
                image_id,
                owner_id,
                result_image_id=outcome.get("result_image_id"),
                error=outcome.get("error"),
            )
            db.commit()
    except BaseException:
        storage.delete(result_key)
        raise


def _result_filename(source_filename: str, image_format: str) -> str:
    stem = PurePosixPath(source_filename).stem or "image"
    suffix = f"-processed.{EXTENSIONS[image_format]}"
    return stem[: MAX_FILENAME_LENGTH - len(suffix)] + suffix


# --- running --------------------------------------------------------------------------------


class JobRunner:
    """Queues jobs on the engine and drives each one to `done` or `failed` in the background,
    so a caller can either wait for a job or leave and poll it."""

    def __init__(
        self,
        database: Database,
        settings: Settings,
        engine: ProcessingEngine,
        server_id: str | None = None,
    ) -> None:
        self.database = database
        self.settings = settings
        self.engine = engine
        self.server_id = server_id
        self._tasks: dict[int, asyncio.Task[None]] = {}
        self._heartbeat: asyncio.Task[None] | None = None
        self._registering = asyncio.Lock()

    async def _ensure_registered(self) -> None:
        """A server that started while the database was down registers before its first job:
        jobs naming no instance are taken for a dead server's and failed by the others."""
        async with self._registering:
            if self.server_id is None:
                self.server_id = await run_in_threadpool(register_server, self.database)
                self.start_heartbeat()

    def start_heartbeat(self) -> None:
        """Keeps this instance's jobs its own, and fails those of instances that went silent."""
        if self.server_id is not None and self._heartbeat is None:
            self._heartbeat = asyncio.create_task(self._beat_forever(self.server_id))

    async def _beat_forever(self, server_id: str) -> None:
        interval = self.settings.job_heartbeat_s
        while True:
            await asyncio.sleep(interval)
            try:
                await run_in_threadpool(beat, self.database, server_id)
                await run_in_threadpool(self._fail_stale_jobs)
            except Exception:
                # A database hiccup must not stop the heartbeat for good; the next beat retries.
                log.warning("heartbeat of server instance %s failed", server_id, exc_info=True)

    def _fail_stale_jobs(self) -> int:
        with self.database.session() as db:
            return fail_stale_jobs(db, self.settings.job_heartbeat_s)

    async def submit(
        self,
        db: Session,
        owner: User,
        image_ids: Sequence[int],
        operations: Sequence[Operation],
    ) -> list[Job]:
        """Validates, admits and queues one job per image (all or none); returns the rows."""
        await self._ensure_registered()
        sources = await run_in_threadpool(
            plan_jobs, db, self.settings, owner, image_ids, operations
        )
        self.engine.admit(len(sources))
        # Shielded: once the rows are being written, the jobs must start even if the request
        # that asked for them is cancelled, or they would stay `queued` until the next start.
        return await asyncio.shield(self._create_and_start(db, owner, sources, operations))

    async def _create_and_start(
        self,
        db: Session,
        owner: User,
        sources: Sequence[JobSource],
        operations: Sequence[Operation],
    ) -> list[Job]:
        try:
            jobs = await run_in_threadpool(
                create_jobs, db, owner, sources, operations, self.server_id
            )
        except BaseException:
            self.engine.withdraw(len(sources))
            raise
        for job, source in zip(jobs, sources, strict=True):
            task = asyncio.create_task(self._run(job.id, source, job.operations))
            self._tasks[job.id] = task
            task.add_done_callback(lambda _task, job_id=job.id: self._tasks.pop(job_id, None))
        return jobs

    async def wait(self, job_id: int) -> None:
        """Returns when the job is finished (at once if it already is). Cancelling the wait
        does not cancel the job."""
        task = self._tasks.get(job_id)
        if task is not None:
            await asyncio.wait({task})

    def _task_for(
        self, source: JobSource, operations: list[dict[str, Any]]
    ) -> tuple[ProcessingTask, str]:
        storage = storage_for(self.settings)
        result_key = storage.new_key(EXTENSIONS[source.output_format])
        task = ProcessingTask(
            source_path=str(storage.path_for(source.storage_key)),
            temp_path=str(storage.new_temp_path("result")),
            destination_path=str(storage.path_for(result_key)),
            operations=operations,
            output_format=source.output_format,
            max_pixels=self.settings.max_image_pixels,
        )
        return task, result_key

    async def _run(self, job_id: int, source: JobSource, operations: list[dict[str, Any]]) -> None:
        try:
            task, result_key = self._task_for(source, operations)
        except OSError:
            log.exception("job %s: storage unavailable", job_id)
            self.engine.withdraw()
            await run_in_threadpool(
                fail_jobs, self.database, [job_id], "Processing failed: storage unavailable"
            )
            return

        async def on_start() -> None:
            if not await run_in_threadpool(mark_running, self.database, job_id):
                raise TaskFailed("The job was no longer queued")

        try:
            result = await self.engine.run(task, on_start)
        except asyncio.CancelledError:
            _remove_files(task)
            raise
        except TaskFailed as exc:
            _remove_files(task)
            await run_in_threadpool(fail_jobs, self.database, [job_id], exc.message)
            return
        except Exception:
            log.exception("job %s failed unexpectedly", job_id)
            _remove_files(task)
            await run_in_threadpool(fail_jobs, self.database, [job_id], "Processing failed")
            return
        try:
            # Shielded: once the result is being recorded, let that finish either way (it
            # removes the file itself if the row cannot be written).
            await asyncio.shield(
                run_in_threadpool(
                    complete_job, self.database, self.settings, job_id, source, result_key, result
                )
            )
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("job %s: the result could not be recorded", job_id)
            await run_in_threadpool(
                fail_jobs, self.database, [job_id], "The result could not be saved"
            )

    async def shutdown(self) -> None:
        """Refuses new jobs, stops the running ones and the workers, and fails what was cut off."""
        if self._heartbeat is not None:
            self._heartbeat.cancel()
            await asyncio.gather(self._heartbeat, return_exceptions=True)
        self.engine.close()
        unfinished = dict(self._tasks)
        for task in unfinished.values():
            task.cancel()
        await asyncio.gather(*unfinished.values(), return_exceptions=True)
        await self.engine.shutdown()
        if unfinished:
            await run_in_threadpool(fail_jobs, self.database, list(unfinished), SHUTDOWN_ERROR)
        if self.server_id is not None:
            await run_in_threadpool(mark_server_stopped, self.database, self.server_id)


def _remove_files(task: ProcessingTask) -> None:
    Path(task.temp_path).unlink(missing_ok=True)
    Path(task.destination_path).unlink(missing_ok=True)
