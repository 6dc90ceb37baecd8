"""Job runners: one per API process, chosen by PROCESSING_BACKEND. `LocalJobRunner` queues jobs
on this process's engine and drives each one to `done` or `failed` in the background;
`CeleryJobRunner` (api/services/celery_job_runner.py) hands them to Celery workers. Either way a
caller can wait for a job or leave and poll it, and the process is a server instance that
beats and fails the jobs of instances that went silent."""

from __future__ import annotations

import asyncio
import logging
from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import Any

from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from api.core.config import Settings
from api.core.db import Database
from api.models import Job, User
from api.processing.engine import EngineBusy, ProcessingEngine, TaskFailed
from api.processing.imaging import EXTENSIONS
from api.processing.operations import Operation
from api.processing.worker import StoredTask
from api.services.errors import ServiceBusy
from api.services.jobs import (
    SHUTDOWN_ERROR,
    JobSource,
    complete_job,
    create_jobs,
    fail_jobs,
    mark_running,
    plan_jobs,
)
from api.services.server_instances import (
    beat,
    fail_stale_jobs,
    mark_server_stopped,
    register_server,
)
from api.storage import Storage, new_key

log = logging.getLogger("pixelgate.jobs")


class JobRunner(ABC):
    """What routes use, whatever the backend; owns this server instance and its heartbeat."""

    def __init__(
        self,
        database: Database,
        storage: Storage,
        settings: Settings,
        server_id: str | None = None,
    ) -> None:
        self.database = database
        self.storage = storage
        self.settings = settings
        self.server_id = server_id
        self._heartbeat: asyncio.Task[None] | None = None
        self._registering = asyncio.Lock()

    async def submit(
        self,
        db: Session,
        owner: User,
        image_ids: Sequence[int],
        operations: Sequence[Operation],
    ) -> list[Job]:
        """Validates and queues one job per image (all or none); returns the rows."""
        await self._ensure_registered()
        sources = await run_in_threadpool(
            plan_jobs, db, self.storage, self.settings, owner, image_ids, operations
        )
        self._admit(len(sources))
        # Shielded: once the rows are being written, the jobs must start even if the request
        # that asked for them is cancelled, or they would stay `queued` until the next start.
        return await asyncio.shield(self._queue(db, owner, sources, operations))

    @abstractmethod
    def _admit(self, count: int) -> None:
        """Refuses (ServiceBusy) what the backend cannot take, before anything is written."""

    @abstractmethod
    async def _queue(
        self,
        db: Session,
        owner: User,
        sources: Sequence[JobSource],
        operations: Sequence[Operation],
    ) -> list[Job]:
        """Writes the admitted jobs' rows and sets them going."""

    @abstractmethod
    async def wait(self, job_id: int) -> None:
        """Returns when the job is finished (at once if it already is). Cancelling the wait
        does not cancel the job."""

    @abstractmethod
    def health(self) -> dict[str, Any]:
        """What /health reports about processing (`workers`, and more per backend)."""

    def prepare(self) -> None:  # noqa: B027 (a backend may need nothing)
        """Runs once at start-up, off the event loop, after the instance registered."""

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
                await run_in_threadpool(self._beat, server_id)
            except Exception:
                # A database hiccup must not stop the heartbeat for good; the next beat retries.
                log.warning("heartbeat of server instance %s failed", server_id, exc_info=True)

    def _beat(self, server_id: str) -> None:
        beat(self.database, server_id)
        with self.database.session() as db:
            fail_stale_jobs(db, self.settings.job_heartbeat_s)

    async def _stop_heartbeat(self) -> None:
        if self._heartbeat is not None:
            self._heartbeat.cancel()
            await asyncio.gather(self._heartbeat, return_exceptions=True)

    async def shutdown(self) -> None:
        await self._stop_heartbeat()
        if self.server_id is not None:
            await run_in_threadpool(mark_server_stopped, self.database, self.server_id)


class LocalJobRunner(JobRunner):
    """Runs jobs on this process's pool (`api/processing/engine.py`)."""

    def __init__(
        self,
        database: Database,
        storage: Storage,
        settings: Settings,
        engine: ProcessingEngine,
        server_id: str | None = None,
    ) -> None:
        super().__init__(database, storage, settings, server_id)
        self.engine = engine
        self._tasks: dict[int, asyncio.Task[None]] = {}

    def health(self) -> dict[str, Any]:
        return {"workers": self.engine.worker_count}

    def _admit(self, count: int) -> None:
        try:
            self.engine.admit(count)
        except EngineBusy as exc:
            raise ServiceBusy(exc.message, exc.retry_after) from None

    async def _queue(
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
        task = self._tasks.get(job_id)
        if task is not None:
            await asyncio.wait({task})

    async def _run(self, job_id: int, source: JobSource, operations: list[dict[str, Any]]) -> None:
        task = StoredTask(
            source_key=source.storage_key,
            result_key=new_key(EXTENSIONS[source.output_format]),
            operations=operations,
            output_format=source.output_format,
            max_pixels=self.settings.max_image_pixels,
        )

        async def on_start() -> None:
            if not await run_in_threadpool(mark_running, self.database, job_id):
                raise TaskFailed("The job was no longer queued")

        try:
            result = await self.engine.run(task, on_start)
        except asyncio.CancelledError:
            await self._discard_result(task)
            raise
        except TaskFailed as exc:
            await self._discard_result(task)
            await run_in_threadpool(fail_jobs, self.database, [job_id], exc.message)
            return
        except Exception:
            log.exception("job %s failed unexpectedly", job_id)
            await self._discard_result(task)
            await run_in_threadpool(fail_jobs, self.database, [job_id], "Processing failed")
            return
        try:
            # Shielded: once the result is being recorded, let that finish either way (it
            # removes the object itself if the row cannot be written).
            await asyncio.shield(
                run_in_threadpool(
                    complete_job,
                    self.database,
                    self.storage,
                    job_id,
                    source,
                    task.result_key,
                    result,
                )
            )
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("job %s: the result could not be recorded", job_id)
            await run_in_threadpool(
                fail_jobs, self.database, [job_id], "The result could not be saved"
            )

    async def _discard_result(self, task: StoredTask) -> None:
        """A killed or timed-out worker may have left its result half written."""
        try:
            await run_in_threadpool(self.storage.delete, task.result_key)
        except Exception:
            log.exception("could not remove the result %s (the next sweep will)", task.result_key)

    async def shutdown(self) -> None:
        """Refuses new jobs, stops the running ones and the workers, and fails what was cut off."""
        await self._stop_heartbeat()
        self.engine.close()
        unfinished = dict(self._tasks)
        for task in unfinished.values():
            task.cancel()
        await asyncio.gather(*unfinished.values(), return_exceptions=True)
        await self.engine.shutdown()
        if unfinished:
            await run_in_threadpool(fail_jobs, self.database, list(unfinished), SHUTDOWN_ERROR)
        await super().shutdown()
