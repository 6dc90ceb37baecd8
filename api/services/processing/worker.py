"""What runs inside a worker process: read a file, apply a pipeline, write a file.

Only paths, operation dicts and a few numbers cross the process boundary, in and out: pickling
pixel arrays through the pool would cost more than many operations themselves. This module is
preloaded by the forkserver (with numpy and Pillow), so a new worker starts in milliseconds.
"""

from __future__ import annotations

import ctypes
import logging
import os
import signal
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from api.services.processing.imaging import MEDIA_TYPES, load_oriented, open_image, save_clean
from api.services.processing.operations import apply_pipeline, largest_size, parse_pipeline
from api.services.storage import move_into_place

log = logging.getLogger("pixelgate.worker")


@dataclass(frozen=True)
class ProcessingTask:
    source_path: str
    temp_path: str
    destination_path: str
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
    try:
        result = apply_pipeline(image, operations)
        temp_path = Path(task.temp_path)
        save_clean(result, temp_path, task.output_format)
        size_bytes = temp_path.stat().st_size
        move_into_place(temp_path, Path(task.destination_path))
    except MemoryError:
        raise ProcessingFailed("The worker ran out of memory") from None
    except Exception as exc:
        log.exception("processing failed")
        raise ProcessingFailed(f"Processing failed ({type(exc).__name__})") from None
    finally:
        Path(task.temp_path).unlink(missing_ok=True)
    return ProcessingResult(
        width=result.width,
        height=result.height,
        size_bytes=size_bytes,
        format=task.output_format,
        media_type=MEDIA_TYPES[task.output_format],
        worker_ms=round((time.perf_counter() - started) * 1000),
    )
