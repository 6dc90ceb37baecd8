"""PROCESSING_BACKEND=celery: jobs are rows plus one `process_job` task each on RabbitMQ; the
workers (`celery -A api.worker worker`, any number of hosts) claim, run and finish them.

The API process runs no pool. It writes the rows (counting the cluster's whole queue, see
`create_jobs`), sends the tasks with publisher confirms, then hands the rows over to the
broker's queue instance. Callers that wait are served by one poller (`JobWaiter`).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence
from typing import Any

from celery import Celery
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from api.core.config import Settings
from api.core.db import Database
from api.models import Job, User
from api.processing.celery_app import JOBS_QUEUE, PROCESS_JOB_TASK
from api.processing.imaging import EXTENSIONS
from api.processing.operations import Operation
from api.services.errors import ServiceBusy
from api.services.job_runner import JobRunner
from api.services.job_waiter import JobWaiter
from api.services.jobs import JobSource, create_jobs, fail_jobs
from api.services.server_instances import (
    BROKER_QUEUE_HOSTNAME,
    BROKER_QUEUE_INSTANCE_ID,
    beat,
    hand_over_to_broker_queue,
)
from api.storage import Storage, new_key

log = logging.getLogger("pixelgate.jobs")

BROKER_UNREACHABLE_ERROR = "The job could not be queued: the job broker is unreachable"
BROKER_RETRY_AFTER_S = 5
BROKER_PROBE_TTL_S = 2.0


def task_plan(job: Job, source: JobSource, settings: Settings) -> dict[str, Any]:
    """The task's one argument besides the job id: object keys and names, never pixels."""
    return {
        "max_pixels": settings.max_image_pixels,
        "source_key": source.storage_key,
        "result_key": new_key(EXTENSIONS[source.output_format]),
        "filename": source.filename,
        "output_format": source.output_format,
        "operations": job.operations,
    }


class CeleryJobRunner(JobRunner):
    def __init__(
        self,
        database: Database,
        storage: Storage,
        settings: Settings,
        celery: Celery,
        server_id: str | None = None,
    ) -> None:
        super().__init__(database, storage, settings, server_id)
        self.celery = celery
        self.waiter = JobWaiter(database)
        self._broker_ok: tuple[float, bool] | None = None
        self._probe_lock = threading.Lock()

    def health(self) -> dict[str, Any]:
        return {"workers": 0, "broker": "ok" if self.broker_reachable() else "unreachable"}

    def broker_reachable(self) -> bool:
        """Probed at most every BROKER_PROBE_TTL_S, so /health stays cheap under polling."""
        with self._probe_lock:
            now = time.monotonic()
            if self._broker_ok is None or now - self._broker_ok[0] > BROKER_PROBE_TTL_S:
                self._broker_ok = (now, self._probe_broker())
            return self._broker_ok[1]

    def _probe_broker(self) -> bool:
        try:
            with self.celery.connection_for_write() as connection:
                connection.ensure_connection(max_retries=0, timeout=2)
        except Exception:
            return False
        return True

    def prepare(self) -> None:
        """The broker queue's instance must exist before jobs are handed to it."""
        try:
            beat(self.database, BROKER_QUEUE_INSTANCE_ID, BROKER_QUEUE_HOSTNAME)
        except SQLAlchemyError:
            log.warning("the broker queue's instance is not recorded yet (database down)")

    def _beat(self, server_id: str) -> None:
        beat(self.database, BROKER_QUEUE_INSTANCE_ID, BROKER_QUEUE_HOSTNAME)
        super()._beat(server_id)

    def _admit(self, count: int) -> None:
        """Nothing to do up front: the cluster's queue is counted as the rows are written."""

    async def _queue(
        self,
        db: Session,
        owner: User,
        sources: Sequence[JobSource],
        operations: Sequence[Operation],
    ) -> list[Job]:
        jobs = await run_in_threadpool(
            create_jobs,
            db,
            owner,
            sources,
            operations,
            self.server_id,
            self.settings.max_queued_jobs,
        )
        job_ids = [job.id for job in jobs]
        plans = [
            task_plan(job, source, self.settings) for job, source in zip(jobs, sources, strict=True)
        ]
        try:
            await run_in_threadpool(self._send, job_ids, plans)
        except Exception as exc:
            # Its type only: a broker error's text may quote the broker's address.
            log.warning("jobs %s: the broker is unreachable (%s)", job_ids, type(exc).__name__)
            await run_in_threadpool(fail_jobs, self.database, job_ids, BROKER_UNREACHABLE_ERROR)
            raise ServiceBusy(
                "The job broker is unreachable; try again shortly", BROKER_RETRY_AFTER_S
            ) from None
        assert self.server_id is not None
        await run_in_threadpool(hand_over_to_broker_queue, self.database, job_ids, self.server_id)
        return jobs

    def _send(self, job_ids: list[int], plans: list[dict[str, Any]]) -> None:
        with self.celery.producer_or_acquire() as producer:
            for job_id, plan in zip(job_ids, plans, strict=True):
                self.celery.send_task(
                    PROCESS_JOB_TASK,
                    args=[job_id, plan],
                    queue=JOBS_QUEUE,
                    producer=producer,
                    retry=True,
                    # The hard limit travels with the task: this deployment's JOB_TIMEOUT_S.
                    time_limit=self.settings.job_timeout_s,
                )

    async def wait(self, job_id: int) -> None:
        await self.waiter.wait(job_id)

    async def shutdown(self) -> None:
        """Jobs are the workers' and the broker's: nothing of theirs is stopped or failed."""
        await self.waiter.close()
        await super().shutdown()
        await run_in_threadpool(self.celery.close)  # its broker connections
