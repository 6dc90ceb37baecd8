"""The Celery worker app: `celery -A api.worker worker` (compose service `worker`).

One worker host = one main process, a server instance that registers and beats (so the jobs
it ran are failed by the others within 3 beats should the host vanish), plus a prefork pool of
PROCESS_WORKERS processes that run `process_job` tasks (settings: `api/processing/celery_app.py`).
Pool processes are forked from the main process with numpy, Pillow and the processing code
already imported, and keep freed pixel buffers like the local engine's workers.

Observability: log lines in LOG_FORMAT, those of a task carrying its `task_id` and `job_id`;
errors to Sentry when SENTRY_DSN is set; with METRICS_TOKEN, the main process serves the sum of
its own and every pool process's metrics (finished jobs and their run time, pool processes) on
WORKER_METRICS_PORT, read from PROMETHEUS_MULTIPROC_DIR (`scripts/start-worker.sh` sets and
empties it).

Imports processing, storage, core, models and the job rules; never routers.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import threading
import time
from contextvars import Token
from http.server import ThreadingHTTPServer
from pathlib import Path
from typing import Any

from billiard.exceptions import TimeLimitExceeded, WorkerLostError
from celery import Task, signals
from celery.worker.request import Request

from api.core.config import load_settings
from api.core.db import Database
from api.core.error_tracking import init_error_tracking
from api.core.log_context import LogContext, bind_log_context, reset_log_context
from api.core.logging import adopt_handlers
from api.core.metrics import WORKER_PROCESSES
from api.core.metrics_exposition import (
    MetricsSource,
    forget_this_process,
    multiprocess_dir,
    serve_metrics,
)
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
init_error_tracking(settings, "worker")
app = make_celery(settings)

# Set in the main process before the pool forks, so every pool process inherits it.
_server_id: str | None = None
_contexts: dict[int, WorkerContext] = {}
_stop_beating = threading.Event()
KILL_WAIT_S = 5.0
# The main process's metrics server; a pool process forked after it started closes its socket.
_metrics_server: ThreadingHTTPServer | None = None
_task_log_contexts: dict[str, Token[LogContext | None]] = {}


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


@signals.after_setup_logger.connect
@signals.after_setup_task_logger.connect
def _log_format(logger: logging.Logger, **_kwargs: Any) -> None:
    """Celery's handlers (on the root logger, which ours propagate to) in LOG_FORMAT."""
    adopt_handlers(logger, settings.log_format)


@signals.worker_ready.connect
def _serve_metrics(**_kwargs: Any) -> None:
    global _metrics_server
    if settings.metrics_token is None:
        return
    if multiprocess_dir() is None:
        log.error(
            "worker metrics not served: the pool processes' counts need "
            "PROMETHEUS_MULTIPROC_DIR (scripts/start-worker.sh sets it)"
        )
        return
    _metrics_server = serve_metrics(
        MetricsSource(), settings.metrics_token, settings.worker_metrics_port
    )


@signals.task_prerun.connect
def _task_log_context(task_id: str, args: Any = None, **_kwargs: Any) -> None:
    job_id = args[0] if args else None
    _task_log_contexts[task_id] = bind_log_context(LogContext(task_id=task_id, job_id=job_id))


@signals.task_postrun.connect
def _end_task_log_context(task_id: str, **_kwargs: Any) -> None:
    token = _task_log_contexts.pop(task_id, None)
    if token is not None:
        reset_log_context(token)


@signals.worker_process_shutdown.connect
def _leave_the_sums(**_kwargs: Any) -> None:
    """A pool process that exits cleanly leaves the live gauges at once (a killed one at the
    next scrape)."""
    forget_this_process()


@signals.worker_process_init.connect
def _initialize_pool_process(**_kwargs: Any) -> None:
    """Before the first task (whose time limit then measures the job, not our start-up): lower
    the priority, keep freed buffers, connect to the database and make the storage client."""
    if _metrics_server is not None:
        _metrics_server.socket.close()  # the main process's, inherited by the fork
    WORKER_PROCESSES.set(1)  # summed over the live pool processes
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
