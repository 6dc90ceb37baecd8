"""The Celery worker app: `celery -A api.worker worker` (compose service `worker`).

One worker host = one main process, a server instance that registers and beats (so the jobs
it ran are failed by the others within 3 beats should the host vanish), plus a prefork pool of
PROCESS_WORKERS processes that run `process_job` tasks (settings: `api/processing/celery_app.py`).
Pool processes are forked from the main process with numpy, Pillow and the processing code
already imported, and keep freed pixel buffers like the local engine's workers.

Imports processing, storage, core, models and the job rules; never routers.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import threading
import time
from pathlib import Path
from typing import Any

from billiard.exceptions import TimeLimitExceeded, WorkerLostError
from celery import Task, signals
from celery.worker.request import Request

from api.core.config import load_settings
from api.core.db import Database
from api.processing.celery_app import PROCESS_JOB_TASK, make_celery
from api.processing.engine import WORKER_NICENESS
from api.processing.worker import initialize_worker
from api.services.server_instances import (
    BROKER_QUEUE_HOSTNAME,
    BROKER_QUEUE_INSTANCE_ID,
    beat,
    fail_stale_jobs,
    mark_server_stopped,
    register_server,
)
from api.services.worker_jobs import (
    WORKER_LOST_ERROR,
    WorkerContext,
    execute_job,
    fail_lost_job,
    timeout_error,
)
from api.storage.factory import storage_from_settings

log = logging.getLogger("pixelgate.worker")

settings = load_settings()
app = make_celery(settings)

# Set in the main process before the pool forks, so every pool process inherits it.
_server_id: str | None = None
_contexts: dict[int, WorkerContext] = {}
_stop_beating = threading.Event()
KILL_WAIT_S = 5.0


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def worker_context() -> WorkerContext:
    """This process's database engine and storage (made after the fork, never shared)."""
    context = _contexts.get(os.getpid())
    if context is None:
        if _server_id is None:
            raise RuntimeError("the worker's server instance is not registered")
        context = WorkerContext(
            database=Database(settings.database_url),
            storage=storage_from_settings(settings),
            settings=settings,
            server_id=_server_id,
        )
        _contexts[os.getpid()] = context
    return context


def _beat_forever(server_id: str) -> None:
    # Scratch files older than two job timeouts cannot belong to a running job.
    scratch_age_s = max(settings.storage_orphan_grace_s, 2 * settings.job_timeout_s)
    while not _stop_beating.wait(settings.job_heartbeat_s):
        try:
            context = worker_context()
            beat(context.database, server_id)
            beat(context.database, BROKER_QUEUE_INSTANCE_ID, BROKER_QUEUE_HOSTNAME)
            with context.database.session() as db:
                fail_stale_jobs(db, settings.job_heartbeat_s)
            context.storage.remove_stale_scratch_files(scratch_age_s)
            context.storage.remove_scratch_files_of_dead_processes()
        except Exception:
            log.warning("heartbeat of worker instance %s failed", server_id, exc_info=True)


@signals.worker_init.connect
def _register_instance(**_kwargs: Any) -> None:
    global _server_id
    _server_id = register_server(Database(settings.database_url))
    context = worker_context()
    beat(context.database, BROKER_QUEUE_INSTANCE_ID, BROKER_QUEUE_HOSTNAME)
    threading.Thread(
        target=_beat_forever, args=(_server_id,), name="instance-heartbeat", daemon=True
    ).start()
    log.info("worker instance %s registered", _server_id)


@signals.worker_process_init.connect
def _initialize_pool_process(**_kwargs: Any) -> None:
    """Before the first task (whose time limit then measures the job, not our start-up): lower
    the priority, keep freed buffers, connect to the database and make the storage client."""
    initialize_worker(WORKER_NICENESS)
    context = worker_context()
    context.storage.remove_scratch_files_of_dead_processes()  # a killed predecessor's
    context.database.is_reachable()
    context.storage.warm_up()


@signals.worker_shutdown.connect
def _mark_stopped(**_kwargs: Any) -> None:
    _stop_beating.set()
    if _server_id is not None:
        mark_server_stopped(worker_context().database, _server_id)


class JobRequest(Request):  # type: ignore[misc]
    def on_failure(
        self, exc_info: Any, send_failed_event: bool = True, return_ok: bool = False
    ) -> None:
        """A pool process that died mid-job (killed, out of memory) fails its job at once, here
        in the main process; its message is still requeued (`task_reject_on_worker_lost`) and
        the redelivered task, finding the job failed, does nothing."""
        exc = getattr(exc_info.exception, "exc", exc_info.exception)
        if isinstance(exc, WorkerLostError):
            job_id, plan = self.args
            context = worker_context()
            fail_lost_job(context, job_id, plan["result_key"], WORKER_LOST_ERROR)
            if self.worker_pid:
                context.storage.remove_scratch_files_of(self.worker_pid)
        super().on_failure(exc_info, send_failed_event=send_failed_event, return_ok=return_ok)

    def on_timeout(self, soft: bool, timeout: float) -> None:
        """Past the hard limit billiard kills the pool process after this returns; it is
        killed here first, so that its scratch files are gone before the job is failed."""
        pid = self.worker_pid
        if not soft and pid:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
            deadline = time.monotonic() + KILL_WAIT_S
            while _alive(pid) and time.monotonic() < deadline:
                time.sleep(0.01)
            worker_context().storage.remove_scratch_files_of(pid)
        super().on_timeout(soft, timeout)


class JobTask(Task):  # type: ignore[misc]
    Request = JobRequest

    def on_failure(
        self, exc: BaseException, task_id: str, args: Any, kwargs: Any, einfo: Any
    ) -> None:
        """Runs in the main process after a hard time limit killed the pool process (and in a
        pool process for an error `execute_job` did not expect): the job fails with why."""
        job_id, plan = args
        if isinstance(exc, TimeLimitExceeded):
            limit = exc.args[0] if exc.args else settings.job_timeout_s
            message = timeout_error(float(limit))
        else:
            message = "Processing failed"
        fail_lost_job(worker_context(), job_id, plan["result_key"], message)


@app.task(base=JobTask, bind=True, name=PROCESS_JOB_TASK)
def process_job(self: Task, job_id: int, plan: dict[str, Any]) -> None:
    redelivered = bool((self.request.delivery_info or {}).get("redelivered"))
    execute_job(worker_context(), job_id, plan, redelivered)
