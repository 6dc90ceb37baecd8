"""The processing engine: a pool of worker processes that the event loop awaits, never runs.

Design, and why:
- One `ProcessPoolExecutor(max_workers=1)` per worker slot rather than one shared executor. A
  shared executor marks *every* pending future as failed when one of its workers dies, and
  cannot stop a single task; with one executor per slot, a killed, crashed or timed-out worker
  affects only the job it was running, and that slot alone is rebuilt.
- Our own bounded queue in front (the executors' queues are unbounded): `admit` refuses work
  past `MAX_QUEUED_JOBS` waiting jobs with `EngineBusy` (a 503 + Retry-After), and a job is handed
  to a slot only when that slot is idle, so its timeout measures its own run, not its wait.
- A timeout kills the worker (SIGKILL) and replaces it: waiting less is not stopping it.
- The forkserver start method, with numpy, Pillow and the worker module preloaded: safe with
  the server's threads (no fork of a threaded process) and a new worker is up in milliseconds.
  Worker processes are started on a slot's first job, so an app that never processes images
  (or a test) pays nothing.
- Workers run at a lower scheduling priority (`os.nice`), so the server's own threads (and
  `/health`) win the CPU when the pool is saturated.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import multiprocessing
import os
import signal
from collections.abc import Awaitable, Callable
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from multiprocessing import forkserver
from multiprocessing.context import BaseContext

from api.core.config import Settings
from api.processing.worker import (
    ObjectFiles,
    ProcessingFailed,
    ProcessingResult,
    StoredTask,
    initialize_worker,
    run_stored_task,
    worker_pid,
)

log = logging.getLogger("pixelgate.processing")

WORKER_NICENESS = 10
WORKER_MODULE = "api.processing.worker"
STOP_WAIT_S = 10.0
WORKER_START_TIMEOUT_S = 60.0
MAX_RETRY_AFTER_S = 300

OnStart = Callable[[], Awaitable[None]]


class TaskFailed(Exception):
    """A job could not be completed; `message` is meant for its owner."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class EngineBusy(Exception):
    """No more work is taken now (queue full, or shutting down); try after `retry_after` s."""

    def __init__(self, message: str, retry_after: int) -> None:
        super().__init__(message)
        self.message = message
        self.retry_after = max(1, retry_after)


def forkserver_context(storage: ObjectFiles) -> BaseContext:
    """The worker module and the storage backend's are preloaded: unpickling the storage in a
    new worker then imports nothing."""
    context = multiprocessing.get_context("forkserver")
    preload = [WORKER_MODULE, type(storage).__module__]
    context.set_forkserver_preload(preload)  # type: ignore[attr-defined]
    return context


def _start_forkserver() -> None:
    try:
        forkserver.ensure_running()
    except Exception:
        log.exception("the forkserver did not start; workers will try again on their first job")


class WorkerSlot:
    """One worker process (in its own single-worker executor), replaced whenever it dies."""

    def __init__(
        self, index: int, context: BaseContext, niceness: int, storage: ObjectFiles
    ) -> None:
        self.index = index
        self._context = context
        self._niceness = niceness
        self._storage = storage
        self._executor: ProcessPoolExecutor | None = None
        self.pid: int | None = None
        self.busy = False
        self.task: StoredTask | None = None

    async def start(self) -> ProcessPoolExecutor:
        """Starts the worker process unless it is running; returns its executor."""
        if self._executor is None:
            self._executor = ProcessPoolExecutor(
                max_workers=1,
                mp_context=self._context,
                initializer=initialize_worker,
                initargs=(self._niceness,),
            )
            try:
                # The first submit spawns the process, which waits for the forkserver (still
                # preloading numpy and Pillow just after start-up): not on the event loop.
                first = await asyncio.to_thread(self._executor.submit, worker_pid)
                self.pid = await asyncio.wait_for(
                    asyncio.wrap_future(first), WORKER_START_TIMEOUT_S
                )
            except (BrokenProcessPool, TimeoutError):
                await self._replace(kill=True)
                raise TaskFailed("A worker process could not be started") from None
            log.info("worker %s started (pid %s)", self.index, self.pid)
        return self._executor

    async def execute(self, task: StoredTask, timeout_s: float) -> ProcessingResult:
        self.busy, self.task = True, task
        try:
            return await self._execute(task, timeout_s)
        finally:
            self.busy, self.task = False, None

    async def _execute(self, task: StoredTask, timeout_s: float) -> ProcessingResult:
        executor = await self.start()
        try:
            future = executor.submit(run_stored_task, task, self._storage)
        except BrokenProcessPool:
            # The worker died while idle: replace it; the job has not started yet.
            await self._replace()
            executor = await self.start()
            future = executor.submit(run_stored_task, task, self._storage)
        try:
            return await asyncio.wait_for(asyncio.wrap_future(future), timeout_s)
        except TimeoutError:
            log.warning(
                "worker %s (pid %s) over %.3gs: killing it", self.index, self.pid, timeout_s
            )
            await self._replace(kill=True)
            raise TaskFailed(f"The job ran longer than {timeout_s:g} s and was stopped") from None
        except BrokenProcessPool:
            log.warning("worker %s (pid %s) died during a job", self.index, self.pid)
            await self._replace()
            raise TaskFailed(
                "The worker process running this job stopped unexpectedly "
                "(killed, crashed or out of memory)"
            ) from None
        except ProcessingFailed as exc:
            raise TaskFailed(str(exc)) from None
        except asyncio.CancelledError:
            # The server is stopping: do not leave the job running behind our back
            # (`stop` then collects the process).
            _kill(self.pid)
            raise

    def _detach(self) -> tuple[ProcessPoolExecutor | None, int | None]:
        executor, pid = self._executor, self.pid
        self._executor, self.pid = None, None
        return executor, pid

    async def _replace(self, kill: bool = False) -> None:
        """Discards this slot's executor (killing its worker first if asked) and waits, in a
        thread and bounded, until its process is gone; the next job starts a fresh one."""
        executor, pid = self._detach()
        if kill:
            _kill(pid)
        if executor is not None:
            await _shutdown_executor(executor)
        if pid is not None:  # a download it had under way (object storage)
            await asyncio.to_thread(self._storage.remove_scratch_files_of, pid)

    async def stop(self) -> None:
        """Stops the worker and waits until it is gone: killed if it is busy (its job is being
        abandoned), else it exits cleanly."""
        executor, pid = self._detach()
        if self.busy:
            _kill(pid)
        if executor is not None:
            await _shutdown_executor(executor)


def _kill(pid: int | None) -> None:
    if pid is not None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


async def _shutdown_executor(executor: ProcessPoolExecutor) -> None:
    done = asyncio.to_thread(executor.shutdown, wait=True, cancel_futures=True)
    try:
        await asyncio.wait_for(done, STOP_WAIT_S)
    except TimeoutError:
        log.error("a worker executor did not shut down within %ss", STOP_WAIT_S)


async def _alongside(
    on_start: Awaitable[None], execution: asyncio.Future[ProcessingResult]
) -> None:
    """Awaits `on_start` while the task already runs: awaiting it first would leave the worker
    idle for a database write per job. If `on_start` fails, the task is let finish (or, when
    we are cancelled, stopped) before the failure is raised, so the worker is idle again and
    the caller may remove the task's files."""
    try:
        await on_start
    except BaseException as exc:
        if isinstance(exc, asyncio.CancelledError):
            execution.cancel()
        await asyncio.gather(execution, return_exceptions=True)
        raise


class ProcessingEngine:
    """Runs admitted tasks on `worker_count` worker processes, in the order they were admitted."""

    def __init__(
        self,
        worker_count: int,
        max_queued: int,
        timeout_s: float,
        storage: ObjectFiles,
        niceness: int = WORKER_NICENESS,
    ) -> None:
        self.worker_count = worker_count
        self.max_queued = max_queued
        self.timeout_s = timeout_s
        context = forkserver_context(storage)
        self._slots = [
            WorkerSlot(index, context, niceness, storage) for index in range(worker_count)
        ]
        # LIFO: the worker used last (already started, warm caches) takes the next job.
        self._idle: asyncio.LifoQueue[WorkerSlot] = asyncio.LifoQueue()
        for slot in self._slots:
            self._idle.put_nowait(slot)
        self._waiting = 0
        self._closed = False
        self._average_job_s = 1.0

    @classmethod
    def from_settings(cls, settings: Settings, storage: ObjectFiles) -> ProcessingEngine:
        return cls(
            settings.process_workers, settings.max_queued_jobs, settings.job_timeout_s, storage
        )

    @property
    def waiting(self) -> int:
        """Admitted jobs not yet on a worker."""
        return self._waiting

    @property
    def worker_pids(self) -> list[int]:
        """Process ids of the workers currently started (for operators and tests)."""
        return [slot.pid for slot in self._slots if slot.pid is not None]

    @property
    def running_tasks(self) -> dict[int, StoredTask]:
        """The task each busy worker is running, by process id."""
        return {
            slot.pid: slot.task
            for slot in self._slots
            if slot.pid is not None and slot.task is not None
        }

    def admit(self, count: int = 1) -> None:
        """Reserves queue places for `count` jobs, all or none; each is then `run` once
        (or handed back with `withdraw`). Raises EngineBusy when the queue is full."""
        if self._closed:
            raise EngineBusy("The server is shutting down; try again shortly", retry_after=5)
        if self._waiting + count > self.max_queued:
            raise EngineBusy(
                f"The processing queue is full ({self._waiting} jobs waiting, at most "
                f"{self.max_queued}); try again later",
                retry_after=self._retry_after(),
            )
        self._waiting += count

    def withdraw(self, count: int = 1) -> None:
        """Gives back places that were admitted but will not be run."""
        self._waiting -= count

    async def run(self, task: StoredTask, on_start: OnStart | None = None) -> ProcessingResult:
        """Runs an admitted task when a worker is free; raises TaskFailed with the reason.

        `on_start` (marking the job running) is awaited while the worker already works."""
        try:
            slot = await self._idle.get()
        finally:
            self._waiting -= 1
        try:
            await slot.start()  # before `on_start`: a job's time starts on a live worker
            started = asyncio.get_running_loop().time()
            execution = asyncio.ensure_future(slot.execute(task, self.timeout_s))
            if on_start is not None:
                await _alongside(on_start(), execution)
            result = await execution
            self._record_duration(asyncio.get_running_loop().time() - started)
            return result
        finally:
            self._idle.put_nowait(slot)

    def _record_duration(self, seconds: float) -> None:
        self._average_job_s = 0.8 * self._average_job_s + 0.2 * seconds

    def _retry_after(self) -> int:
        estimate = math.ceil(self._waiting * self._average_job_s / self.worker_count)
        return max(1, min(MAX_RETRY_AFTER_S, estimate))

    def warm_up(self) -> None:
        """Starts the forkserver (numpy, Pillow preloaded) in the background, so the first job
        does not wait for it; the workers themselves start on their first job."""
        asyncio.get_running_loop().run_in_executor(None, _start_forkserver)

    def close(self) -> None:
        """Admits nothing more (503); what is already admitted still runs."""
        self._closed = True

    async def shutdown(self) -> None:
        """Stops every worker: idle ones cleanly, busy ones (their jobs were cancelled) at once."""
        self.close()
        await asyncio.gather(*(slot.stop() for slot in self._slots))
