"""The processing engine with real worker processes (no database, no HTTP)."""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import pytest
from PIL import Image

from api.processing.engine import EngineBusy, ProcessingEngine, TaskFailed
from api.processing.worker import ProcessingResult, StoredTask
from api.storage import LocalStorage, new_key
from tests.support.processes import process_is_gone

T = TypeVar("T")
DEADLINE_S = 120

# Work that takes seconds on any machine (a 4000×4000 canvas blurred again and again) from a
# tiny file: long enough to be killed or timed out mid-run.
SLOW_PIPELINE: list[dict[str, Any]] = [
    {"op": "resize", "width": 4000, "height": 4000},
    *[{"op": "blur", "radius": 50}] * 9,
]
SHORTER_SLOW_PIPELINE: list[dict[str, Any]] = [
    {"op": "resize", "width": 3000, "height": 3000},
    *[{"op": "blur", "radius": 50}] * 3,
]


def run_async(make: Callable[[], Awaitable[T]]) -> T:
    async def bounded() -> T:
        return await asyncio.wait_for(make(), DEADLINE_S)

    return asyncio.run(bounded())


@pytest.fixture
def storage(tmp_path: Path) -> LocalStorage:
    return LocalStorage(tmp_path / "images")


@pytest.fixture
def source_key(storage: LocalStorage) -> str:
    key = new_key("png")
    with storage.writing(key) as path:
        Image.new("RGB", (60, 40), (250, 120, 10)).save(path, format="PNG")
    return key


def make_task(source_key: str, operations: list[dict[str, Any]]) -> StoredTask:
    return StoredTask(
        source_key=source_key,
        result_key=new_key("png"),
        operations=operations,
        output_format="PNG",
        max_pixels=40_000_000,
    )


def make_engine(storage: LocalStorage, worker_count: int, timeout_s: float) -> ProcessingEngine:
    return ProcessingEngine(
        worker_count=worker_count, max_queued=5, timeout_s=timeout_s, storage=storage
    )


def scratch_files(storage: LocalStorage) -> list[Path]:
    return list(storage.scratch_dir.iterdir()) if storage.scratch_dir.is_dir() else []


async def wait_until_running(engine: ProcessingEngine, *tasks: StoredTask) -> dict[str, int]:
    """The pid running each task (by result key), once all of them run."""
    while True:
        running = {task.result_key: pid for pid, task in engine.running_tasks.items()}
        if all(task.result_key in running for task in tasks):
            return running
        await asyncio.sleep(0.01)


def test_a_task_runs_in_a_worker_and_only_metadata_comes_back(
    storage: LocalStorage, source_key: str
) -> None:
    task = make_task(source_key, [{"op": "grayscale"}, {"op": "resize", "width": 30}])

    async def scenario() -> tuple[ProcessingResult, list[int]]:
        engine = make_engine(storage, worker_count=1, timeout_s=60)
        engine.admit()
        try:
            return await engine.run(task), engine.worker_pids
        finally:
            await engine.shutdown()

    result, pids = run_async(scenario)
    assert (result.width, result.height, result.format) == (30, 20, "PNG")
    assert pids and os.getpid() not in pids
    with storage.local_file(task.result_key) as path, Image.open(path) as written:
        assert written.size == (30, 20)
        assert written.mode == "L"
    assert result.size_bytes == storage.path_for(task.result_key).stat().st_size
    assert not scratch_files(storage)


def test_a_failing_task_reports_why_and_writes_nothing(storage: LocalStorage) -> None:
    task = make_task(new_key("png"), [{"op": "invert"}])

    async def scenario() -> None:
        engine = make_engine(storage, worker_count=1, timeout_s=60)
        engine.admit()
        try:
            await engine.run(task)
        finally:
            await engine.shutdown()

    with pytest.raises(TaskFailed, match="source image file is missing"):
        run_async(scenario)
    assert not storage.exists(task.result_key)
    assert not scratch_files(storage)


def test_a_timeout_kills_the_worker_and_the_next_task_runs(
    storage: LocalStorage, source_key: str
) -> None:
    slow = make_task(source_key, SLOW_PIPELINE)
    quick = make_task(source_key, [{"op": "invert"}])

    async def scenario() -> tuple[str, int, ProcessingResult, list[int]]:
        engine = make_engine(storage, worker_count=1, timeout_s=0.5)
        engine.admit(2)
        try:
            running = asyncio.create_task(engine.run(slow))
            pid = (await wait_until_running(engine, slow))[slow.result_key]
            with pytest.raises(TaskFailed) as failed:
                await running
            return failed.value.message, pid, await engine.run(quick), engine.worker_pids
        finally:
            await engine.shutdown()

    message, killed_pid, result, pids_after = run_async(scenario)
    assert "longer than 0.5 s" in message
    assert process_is_gone(killed_pid)  # really stopped, not merely no longer awaited
    assert killed_pid not in pids_after
    assert result.width == 60
    assert not storage.exists(slow.result_key)


def test_a_killed_worker_fails_only_its_task_and_the_pool_recovers(
    storage: LocalStorage, source_key: str
) -> None:
    doomed = make_task(source_key, SLOW_PIPELINE)
    neighbour = make_task(source_key, SHORTER_SLOW_PIPELINE)
    later = make_task(source_key, [{"op": "sepia"}])

    async def scenario() -> tuple[list[Any], ProcessingResult, int, int]:
        engine = make_engine(storage, worker_count=2, timeout_s=120)
        engine.admit(3)
        try:
            tasks = [asyncio.create_task(engine.run(t)) for t in (doomed, neighbour)]
            running = await wait_until_running(engine, doomed, neighbour)
            os.kill(running[doomed.result_key], signal.SIGKILL)
            outcomes = await asyncio.gather(*tasks, return_exceptions=True)
            return (
                outcomes,
                await engine.run(later),
                running[doomed.result_key],
                running[neighbour.result_key],
            )
        finally:
            await engine.shutdown()

    (doomed_outcome, neighbour_outcome), later_result, killed_pid, neighbour_pid = run_async(
        scenario
    )
    assert isinstance(doomed_outcome, TaskFailed)
    assert "stopped unexpectedly" in doomed_outcome.message
    assert isinstance(neighbour_outcome, ProcessingResult)  # its worker was left alone
    assert neighbour_outcome.width == 3000
    assert storage.exists(neighbour.result_key)
    assert later_result.width == 60
    assert process_is_gone(killed_pid)
    assert neighbour_pid != killed_pid


def test_the_queue_is_bounded_and_admission_is_all_or_nothing(storage: LocalStorage) -> None:
    async def scenario() -> None:
        engine = ProcessingEngine(worker_count=1, max_queued=2, timeout_s=60, storage=storage)
        engine.admit(2)
        with pytest.raises(EngineBusy) as busy:
            engine.admit()
        assert busy.value.retry_after >= 1
        assert "queue is full" in busy.value.message
        engine.withdraw(1)
        with pytest.raises(EngineBusy):
            engine.admit(2)  # one place left: a batch of two is refused whole
        engine.admit(1)
        assert engine.waiting == 2
        engine.close()
        engine.withdraw(2)
        with pytest.raises(EngineBusy, match="shutting down"):
            engine.admit()
        await engine.shutdown()

    run_async(scenario)


def test_workers_run_at_a_lower_priority_than_the_server(
    storage: LocalStorage, source_key: str
) -> None:
    async def scenario() -> int:
        engine = make_engine(storage, worker_count=1, timeout_s=60)
        engine.admit()
        try:
            await engine.run(make_task(source_key, [{"op": "invert"}]))
            [pid] = engine.worker_pids
            return os.getpriority(os.PRIO_PROCESS, pid)
        finally:
            await engine.shutdown()

    assert run_async(scenario) > os.getpriority(os.PRIO_PROCESS, 0)


def test_a_task_starts_while_its_on_start_hook_is_still_running(
    storage: LocalStorage, source_key: str
) -> None:
    """The job's `running` row is written alongside the work, not before it: a worker must not
    idle for a database write per job."""
    task = make_task(source_key, [{"op": "invert"}])

    async def scenario() -> ProcessingResult:
        engine = make_engine(storage, worker_count=1, timeout_s=60)
        engine.admit()

        async def on_start() -> None:
            # Returns only once the worker has the task: deadlocks (and times out) if the
            # engine waited for this hook before handing the task over.
            await asyncio.wait_for(wait_until_running(engine, task), 30)

        try:
            return await engine.run(task, on_start)
        finally:
            await engine.shutdown()

    assert run_async(scenario).width == 60


def test_a_failing_on_start_hook_fails_the_task_once_the_worker_is_idle_again(
    storage: LocalStorage, source_key: str
) -> None:
    doomed = make_task(source_key, SHORTER_SLOW_PIPELINE)
    later = make_task(source_key, [{"op": "invert"}])

    async def scenario() -> tuple[str, bool, list[int], ProcessingResult, list[int]]:
        engine = make_engine(storage, worker_count=1, timeout_s=120)
        engine.admit(2)

        async def refuse() -> None:
            await asyncio.wait_for(wait_until_running(engine, doomed), 30)
            raise TaskFailed("The job was no longer queued")

        try:
            with pytest.raises(TaskFailed) as failed:
                await engine.run(doomed, refuse)
            # Raised only after the worker finished: nothing more will write the files.
            written = storage.exists(doomed.result_key)
            pids = engine.worker_pids
            return failed.value.message, written, pids, await engine.run(later), engine.worker_pids
        finally:
            await engine.shutdown()

    message, written, pids_before, later_result, pids_after = run_async(scenario)
    assert message == "The job was no longer queued"
    assert written  # the worker was let finish, not killed...
    assert pids_before == pids_after  # ...and it runs the next task
    assert later_result.width == 60
