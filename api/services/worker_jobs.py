"""What a Celery worker does with one `process_job` task: claim the job, process the object,
record the result. Idempotent by job id: every step is a conditional update, so a redelivered
message never completes a job twice nor revives a failed one.

- The claim (queued → running, naming this worker host's instance) succeeds once. A message
  for a job that is no longer queued runs nothing. If it was delivered before (RabbitMQ says
  `redelivered`) and the job is still running, the process that ran it was lost (killed, out
  of memory, its host gone; the message came back by `task_reject_on_worker_lost` or a closed
  connection): the job is failed, never run a second time. (A worker host whose pool process
  died fails the job itself at once, see `api/worker.py`; this covers the rest.)
- The source is downloaded to scratch space, processed, the result uploaded; then the row is
  committed (and the result object deleted if it cannot be).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from api.core.config import Settings
from api.core.db import Database
from api.processing.worker import ProcessingFailed, StoredTask, run_stored_task
from api.services.jobs import JobSource, complete_job, fail_jobs, mark_running
from api.storage import Storage, StorageUnavailable

log = logging.getLogger("pixelgate.worker")

WORKER_LOST_ERROR = (
    "The worker process running this job stopped unexpectedly (killed, crashed or out of memory)"
)
STORAGE_UNAVAILABLE_ERROR = "Processing failed: the image store is unreachable"
RESULT_NOT_SAVED_ERROR = "The result could not be saved"


def timeout_error(timeout_s: float) -> str:
    return f"The job ran longer than {timeout_s:g} s and was stopped"


@dataclass(frozen=True, slots=True)
class WorkerContext:
    """What a worker process holds for its tasks."""

    database: Database
    storage: Storage
    settings: Settings
    server_id: str


def execute_job(
    context: WorkerContext, job_id: int, plan: dict[str, Any], redelivered: bool
) -> None:
    database, storage = context.database, context.storage
    result_key = plan["result_key"]
    if not mark_running(database, job_id, context.server_id):
        if redelivered:
            fail_lost_job(context, job_id, result_key, WORKER_LOST_ERROR)
        return
    task = StoredTask(
        source_key=plan["source_key"],
        result_key=result_key,
        operations=plan["operations"],
        output_format=plan["output_format"],
        max_pixels=plan["max_pixels"],
    )
    try:
        result = run_stored_task(task, storage)
    except ProcessingFailed as exc:
        fail_lost_job(context, job_id, result_key, str(exc))
        return
    except StorageUnavailable:
        log.warning("job %s: the image store is unreachable", job_id, exc_info=True)
        fail_lost_job(context, job_id, result_key, STORAGE_UNAVAILABLE_ERROR)
        return
    source = JobSource(0, task.source_key, plan["filename"], task.output_format)
    try:
        complete_job(database, storage, job_id, source, result_key, result)
    except Exception:
        log.exception("job %s: the result could not be recorded", job_id)
        fail_jobs(database, [job_id], RESULT_NOT_SAVED_ERROR)


def fail_lost_job(context: WorkerContext, job_id: int, result_key: str, message: str) -> None:
    """Fails the job unless it has finished, and then removes what its run may have left."""
    if fail_jobs(context.database, [job_id], message):
        try:
            context.storage.delete(result_key)
        except Exception:
            log.exception("could not remove the result %s (the next sweep will)", result_key)
