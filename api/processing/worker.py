"""What runs inside a worker process: read an image, apply a pipeline, write the result.

Only object keys, operation dicts and a few numbers cross the process boundary, in and out:
pickling pixel arrays through the pool would cost more than many operations themselves. This
module is preloaded by the forkserver (with numpy and Pillow), so a new worker starts in
milliseconds.
"""

from __future__ import annotations

import ctypes
import logging
import os
import signal
import time
import warnings
from contextlib import AbstractContextManager, ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from pydantic import ValidationError

from api.processing.imaging import MEDIA_TYPES, load_oriented, open_image, save_clean
from api.processing.operations import apply_pipeline, largest_size, parse_pipeline

log = logging.getLogger("pixelgate.worker")


class ObjectFiles(Protocol):
    """What a worker needs of the storage (`api.storage.Storage` provides it): an object as a
    local file to read, and a local file that becomes a new object once written."""

    def local_file(self, key: str) -> AbstractContextManager[Path]: ...

    def writing(self, key: str) -> AbstractContextManager[Path]: ...

    def remove_scratch_files_of(self, pid: int) -> int: ...


@dataclass(frozen=True)
class ProcessingTask:
    """File to file: read `source_path`, write the result to `output_path`."""

    source_path: str
    output_path: str
    operations: list[dict[str, Any]]
    output_format: str
    max_pixels: int


@dataclass(frozen=True)
class StoredTask:
    """Object to object: what the engine hands a worker, with the storage both live in."""

    source_key: str
    result_key: str
    operations: list[dict[str, Any]]
    output_format: str
    max_pixels: int


@dataclass(frozen=True)
class ProcessingResult:
    width: int
    height: int
    size_bytes: int
    format: str
    media_type: str
    worker_ms: int


class ProcessingFailed(Exception):
    """The job cannot be done; the message is meant for the job's owner."""


# glibc's mallopt parameters (malloc.h).
M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3
# The largest mmap threshold glibc accepts on 64-bit; a 2000×2000 RGB buffer is 12 MB.
WORKER_MMAP_THRESHOLD = 32 * 1024 * 1024
WORKER_TRIM_THRESHOLD = 256 * 1024 * 1024


def keep_freed_buffers() -> None:
    """Keeps freed image buffers in the worker's heap for the next job.

    By default glibc maps every large buffer afresh and hands it back to the kernel when it
    is freed, so each job page-faults all of its pixel buffers in again: measured, jobs ran
    about 1.4× longer in a worker than in a warm process. The price is that a worker keeps
    the memory of its largest job (bounded by MAX_IMAGE_PIXELS) between jobs.
    """
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:  # not glibc: nothing to tune
        return
    libc.mallopt(M_MMAP_THRESHOLD, WORKER_MMAP_THRESHOLD)
    libc.mallopt(M_TRIM_THRESHOLD, WORKER_TRIM_THRESHOLD)


def initialize_worker(niceness: int) -> None:
    """Runs once in each new worker: lower its priority so the server stays responsive, keep
    freed buffers for the next job, and leave Ctrl+C to the server (which stops the workers
    itself)."""
    if niceness:
        os.nice(niceness)
    keep_freed_buffers()
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    warnings.simplefilter("ignore")


def worker_pid() -> int:
    return os.getpid()


def run_stored_task(task: StoredTask, storage: ObjectFiles) -> ProcessingResult:
    """Processes the object `source_key` into the new object `result_key`, which exists only
    once complete: a failed or killed run leaves nothing that `storage.delete` does not clear."""
    with ExitStack() as files:
        try:
            source_path = files.enter_context(storage.local_file(task.source_key))
        except FileNotFoundError:
            raise ProcessingFailed("The source image file is missing") from None
        output_path = files.enter_context(storage.writing(task.result_key))
        return run_task(
            ProcessingTask(
                source_path=str(source_path),
                output_path=str(output_path),
                operations=task.operations,
                output_format=task.output_format,
                max_pixels=task.max_pixels,
            )
        )


def run_task(task: ProcessingTask) -> ProcessingResult:
    started = time.perf_counter()
    try:
        operations = parse_pipeline(task.operations)
    except ValidationError as exc:
        raise ProcessingFailed(f"Invalid operations: {exc.error_count()} error(s)") from None
    try:
        with open_image(task.source_path) as source:
            image = load_oriented(source)
    except FileNotFoundError:
        raise ProcessingFailed("The source image file is missing") from None
    except Exception as exc:
        raise ProcessingFailed(f"The source image cannot be read ({type(exc).__name__})") from None

    width, height = largest_size(image.size, operations)
    if width * height > task.max_pixels:
        raise ProcessingFailed(
            f"The pipeline would make a {width}×{height} image, over the limit of "
            f"{task.max_pixels} pixels"
        )
    output_path = Path(task.output_path)
    try:
        result = apply_pipeline(image, operations)
        save_clean(result, output_path, task.output_format)
        size_bytes = output_path.stat().st_size
    except Exception as exc:
        output_path.unlink(missing_ok=True)
        if isinstance(exc, MemoryError):
            raise ProcessingFailed("The worker ran out of memory") from None
        log.exception("processing failed")
        raise ProcessingFailed(f"Processing failed ({type(exc).__name__})") from None
    return ProcessingResult(
        width=result.width,
        height=result.height,
        size_bytes=size_bytes,
        format=task.output_format,
        media_type=MEDIA_TYPES[task.output_format],
        worker_ms=round((time.perf_counter() - started) * 1000),
    )
