"""Real Celery workers in tests: `celery -A api.worker worker` as a process of its own (its own
process group, so a test can kill the whole host at once), stopped afterwards."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path

from tests.support.paths import REPO_ROOT
from tests.support.processes import child_pids

READY_TIMEOUT_S = 90
STOP_TIMEOUT_S = 20


@dataclass
class WorkerProcess:
    process: subprocess.Popen[bytes]
    nodename: str
    log_path: Path

    @property
    def pid(self) -> int:
        return self.process.pid

    def pool_pids(self) -> set[int]:
        return child_pids(self.pid)

    def kill_host(self) -> None:
        """SIGKILL to the main process and its pool at once, as if the host vanished."""
        with suppress(ProcessLookupError):
            os.killpg(self.pid, signal.SIGKILL)
        self.process.wait()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


def worker_args(nodename: str, concurrency: int) -> list[str]:
    return [
        sys.executable,
        "-m",
        "celery",
        "-A",
        "api.worker",
        "worker",
        "--loglevel=INFO",
        f"--hostname={nodename}",
        f"--concurrency={concurrency}",
        "--without-gossip",
        "--without-mingle",
    ]


@contextmanager
def celery_worker(
    env: dict[str, str], log_path: Path, concurrency: int = 2
) -> Iterator[WorkerProcess]:
    """Starts a worker with the app settings in `env`; yields once it consumes its queue."""
    nodename = f"pixelgate-test-{uuid.uuid4().hex[:8]}@localhost"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            worker_args(nodename, concurrency),
            env={**env, "PYTHONUNBUFFERED": "1"},
            cwd=REPO_ROOT,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        worker = WorkerProcess(process, nodename, log_path)
        try:
            deadline = time.monotonic() + READY_TIMEOUT_S
            while " ready." not in worker.log():
                if process.poll() is not None:
                    raise RuntimeError(
                        f"the worker exited with {process.returncode}:\n{worker.log()}"
                    )
                if time.monotonic() > deadline:
                    raise TimeoutError(f"the worker was not ready in time:\n{worker.log()}")
                time.sleep(0.1)
            yield worker
        finally:
            stop_worker(worker)


def stop_worker(worker: WorkerProcess) -> None:
    """Warm shutdown (SIGTERM), then SIGKILL to the whole group if it takes too long."""
    if worker.process.poll() is None:
        worker.process.terminate()
        with suppress(subprocess.TimeoutExpired):
            worker.process.wait(timeout=STOP_TIMEOUT_S)
    with suppress(ProcessLookupError):
        os.killpg(worker.pid, signal.SIGKILL)
    worker.process.wait()
