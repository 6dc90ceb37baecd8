"""Processing benchmark: `python -m bench.processing` (or `make bench`). Prints figures.

1. A batch of 16 images of 2000×2000 through one pipeline (blur radius 5, then sharpen), run
   in-process sequentially, through a thread pool of the engine's size, and through the engine
   over HTTP (a real uvicorn server): once as one `POST /images/process-batch`, once as one
   `POST /images/{id}/process` with `wait: true` per image, all at once. All of them run the
   same worker function (read the file, apply, write the result), so only the parallelism and
   the way there differ.
2. `/health` latency, p50 and p99, with the pool idle and with it saturated.
3. Peak memory growth of the server process during a 10 MB upload.

Not a test: nothing is asserted; the figures and the targets are printed side by side.
"""

from __future__ import annotations

import math
import os
import platform
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import numpy as np
from PIL import Image

from api.processing.worker import ProcessingTask, run_task
from tests.support.accounts import register
from tests.support.databases import migrate
from tests.support.servers import api_env, free_port, running_process

IMAGES = 16
REPEATS = 5  # each variant's figure is its best of this many runs
SIDE = 2000
PIPELINE: list[dict[str, Any]] = [{"op": "blur", "radius": 5}, {"op": "sharpen"}]
HEALTH_SAMPLES = 200
BATCH_POLL_S = 0.25
SATURATING_BATCHES = 3
UPLOAD_BYTES_TARGET = 10 * 1024 * 1024
WORKERS = os.cpu_count() or 1


@dataclass(frozen=True)
class Timing:
    name: str
    seconds: float
    workers: int

    @property
    def images_per_second(self) -> float:
        return IMAGES / self.seconds


# --- inputs ---------------------------------------------------------------------------------


def make_photo(path: Path, seed: int) -> None:
    """A photo-like 2000×2000 JPEG: smooth gradients with fine noise (compresses like a photo)."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:SIDE, 0:SIDE].astype(np.float32) / SIDE
    channels = [
        128 + 100 * np.sin(6 * x + seed) * np.cos(4 * y),
        128 + 100 * np.cos(5 * y + seed),
        128 + 100 * np.sin(3 * (x + y)),
    ]
    pixels = np.dstack(channels) + rng.normal(0, 12, (SIDE, SIDE, 3))
    Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8), "RGB").save(path, quality=90)


def make_upload_file(path: Path) -> int:
    """A PNG of random pixels just under MAX_UPLOAD_MB (random pixels do not compress)."""
    side = int((UPLOAD_BYTES_TARGET * 0.93 / 3) ** 0.5)
    rng = np.random.default_rng(1)
    Image.fromarray(rng.integers(0, 256, (side, side, 3), dtype=np.uint8), "RGB").save(path)
    return path.stat().st_size


def tasks_for(sources: Sequence[Path], out_dir: Path) -> list[ProcessingTask]:
    out_dir.mkdir(parents=True, exist_ok=True)
    return [
        ProcessingTask(
            source_path=str(source),
            output_path=str(out_dir / f"{index}.jpg"),
            operations=PIPELINE,
            output_format="JPEG",
            max_pixels=40_000_000,
        )
        for index, source in enumerate(sources)
    ]


# --- timing and in-process runs -----------------------------------------------------------


@dataclass(frozen=True)
class Variant:
    name: str
    workers: int
    run: Callable[[], float]  # runs the batch once; returns its seconds


def best_timings(variants: Sequence[Variant]) -> list[Timing]:
    """Each variant's best of REPEATS runs, the variants taking turns. On a shared 2-core VM
    single runs swing by 20% and the CPU on offer drifts over tens of seconds: taking turns
    exposes every variant to the same drift, and the least disturbed run of each is the
    closest to what its code costs."""
    best = [math.inf] * len(variants)
    for _ in range(REPEATS):
        for index, variant in enumerate(variants):
            best[index] = min(best[index], variant.run())
    return [
        Timing(variant.name, seconds, variant.workers)
        for variant, seconds in zip(variants, best, strict=True)
    ]


def wall_seconds(run: Callable[[], object]) -> Callable[[], float]:
    def timed_run() -> float:
        started = time.perf_counter()
        run()
        return time.perf_counter() - started

    return timed_run


def run_sequential(tasks: Sequence[ProcessingTask]) -> None:
    for task in tasks:
        run_task(task)


def run_threads(tasks: Sequence[ProcessingTask]) -> None:
    with ThreadPoolExecutor(WORKERS) as pool:
        list(pool.map(run_task, tasks))


# --- the server -----------------------------------------------------------------------------


@contextmanager
def server(workdir: Path) -> Iterator[tuple[str, int]]:
    """A real uvicorn with the engine (PROCESS_WORKERS = CPU count); yields URL and pid."""
    database_url = f"sqlite:///{workdir / 'bench.db'}"
    migrate(database_url)
    env = api_env(database_url, workdir / "images", PROCESS_WORKERS=str(WORKERS))
    env["MAX_QUEUED_JOBS"] = "1000"
    env["LOG_LEVEL"] = "WARNING"
    port = free_port()
    args = [sys.executable, "-m", "uvicorn", "api.main:app", "--port", str(port)]
    args += ["--host", "127.0.0.1", "--no-access-log"]
    url = f"http://127.0.0.1:{port}"
    with running_process(args, env, f"{url}/health", workdir / "server.log") as process:
        yield url, process.pid


def upload(http: httpx.Client, headers: dict[str, str], path: Path) -> int:
    with path.open("rb") as file:
        response = http.post("/images", files={"file": (path.name, file)}, headers=headers)
    response.raise_for_status()
    return response.json()["id"]


def run_batch_request(http: httpx.Client, headers: dict[str, str], image_ids: list[int]) -> float:
    """Seconds from sending one `POST /images/process-batch` to the last of its jobs'
    `finished_at`.

    That moment is the server's own record (its clock is this machine's), so the client only
    needs to learn that every job has finished: it asks every BATCH_POLL_S, which keeps its
    requests from taking CPU from the very workers measured and adds nothing to the figure.
    """
    sent = datetime.now(UTC)
    response = http.post(
        "/images/process-batch",
        json={"image_ids": image_ids, "operations": PIPELINE},
        headers=headers,
    )
    response.raise_for_status()
    batch = {job["id"] for job in response.json()["jobs"]}
    while True:
        time.sleep(BATCH_POLL_S)
        newest = http.get(f"/jobs?limit={len(batch)}", headers=headers).json()["items"]
        if {job["id"] for job in newest} != batch:
            raise RuntimeError("other jobs were queued during the benchmark")
        if all(job["status"] in ("done", "failed") for job in newest):
            break
    for job in newest:
        if job["status"] != "done":
            raise RuntimeError(f"job {job['id']} {job['status']}: {job['error']}")
    last_finished = max(datetime.fromisoformat(job["finished_at"]) for job in newest)
    return (last_finished - sent).total_seconds()


def run_wait_requests(http: httpx.Client, headers: dict[str, str], image_ids: list[int]) -> float:
    """Seconds from submitting the images to the last job done, as the client sees it.

    One `wait: true` request per image, all at once: each answers when its job is finished,
    so nothing polls; but each image also costs a request of its own (authentication, checks,
    its own job row), which the batch request pays once.
    """

    def process(image_id: int) -> None:
        response = http.post(
            f"/images/{image_id}/process",
            json={"operations": PIPELINE, "wait": True},
            headers=headers,
        )
        response.raise_for_status()
        job = response.json()
        if job["status"] != "done":
            raise RuntimeError(f"job {job['id']} {job['status']}: {job['error']}")

    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=len(image_ids)) as pool:
        list(pool.map(process, image_ids))
    return time.perf_counter() - started


def health_latencies_ms(
    http: httpx.Client, samples: int, keep_going: Callable[[], bool]
) -> list[float]:
    latencies = []
    for _ in range(samples):
        if not keep_going():
            break
        started = time.perf_counter()
        http.get("/health").raise_for_status()
        latencies.append((time.perf_counter() - started) * 1000)
    return latencies


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


def memory_kib(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1])
    raise KeyError(field)


def reset_peak_memory(pid: int) -> bool:
    """Resets the kernel's peak-RSS mark (VmHWM) of `pid`; False where that is not allowed."""
    try:
        Path(f"/proc/{pid}/clear_refs").write_text("5")
    except OSError:
        return False
    return True


# --- report ---------------------------------------------------------------------------------


def machine() -> str:
    model = "unknown CPU"
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    memory_gib = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return (
        f"{os.cpu_count()} CPUs ({model}), {memory_gib:.0f} GiB RAM, "
        f"Python {platform.python_version()}, {platform.system()} {platform.release()}"
    )


def main() -> None:
    print(f"Machine: {machine()}")
    print(f"Batch: {IMAGES} images of {SIDE}×{SIDE} JPEG, pipeline {PIPELINE}, {WORKERS} workers")
    print(f"Each time below is the best of {REPEATS} runs; the ways take turns.")
    workdir = Path(tempfile.mkdtemp(prefix="pixelgate-bench-"))
    try:
        sources = []
        for index in range(IMAGES):
            sources.append(workdir / f"photo-{index}.jpg")
            make_photo(sources[-1], index)

        run_task(tasks_for(sources[:1], workdir / "warm")[0])  # imports and caches, once
        upload_file = workdir / "upload.png"
        upload_size = make_upload_file(upload_file)
        with server(workdir) as (url, pid), httpx.Client(base_url=url, timeout=300) as http:
            headers = register(http, "bench_user")["headers"]
            image_ids = [upload(http, headers, path) for path in sources]
            run_wait_requests(http, headers, image_ids[:WORKERS])  # start every worker once
            timings = best_timings(
                [
                    Variant(
                        "sequential",
                        1,
                        wall_seconds(lambda: run_sequential(tasks_for(sources, workdir / "seq"))),
                    ),
                    Variant(
                        f"thread pool ({WORKERS})",
                        WORKERS,
                        wall_seconds(lambda: run_threads(tasks_for(sources, workdir / "thr"))),
                    ),
                    Variant(
                        f"engine, 1 batch request ({WORKERS})",
                        WORKERS,
                        lambda: run_batch_request(http, headers, image_ids),
                    ),
                    Variant(
                        f"engine, {IMAGES} wait requests ({WORKERS})",
                        WORKERS,
                        lambda: run_wait_requests(http, headers, image_ids),
                    ),
                ]
            )

            idle = health_latencies_ms(http, HEALTH_SAMPLES, lambda: True)
            saturated = measure_health_while_saturated(http, headers, image_ids)

            warm_png = workdir / "warm.png"
            Image.new("RGB", (64, 64)).save(warm_png)
            upload(http, headers, warm_png)  # warm the upload path (imports, buffers)
            rss_before = memory_kib(pid, "VmRSS")
            peak_reset = reset_peak_memory(pid)
            upload(http, headers, upload_file)
            peak = memory_kib(pid, "VmHWM")
    finally:
        shutil.rmtree(workdir, ignore_errors=True)

    report_speed(timings)
    report_health(idle, saturated)
    report_upload(upload_size, (peak - rss_before) * 1024, peak_reset)


def report_speed(timings: list[Timing]) -> None:
    """The first timing is the baseline; the target is the engine's, through the batch route."""
    baseline, _threads, engine = timings[:3]
    print()
    print(f"{'run':<34}{'seconds':>9}{'images/s':>10}{'speedup':>9}{'efficiency':>12}")
    for timing in timings:
        speedup = baseline.seconds / timing.seconds
        print(
            f"{timing.name:<34}{timing.seconds:>9.2f}{timing.images_per_second:>10.2f}"
            f"{speedup:>8.2f}×{speedup / timing.workers:>12.2f}"
        )
    engine_speedup = baseline.seconds / engine.seconds
    print(
        f"target: engine speedup ≥ 1.85× on 2 cores, batch request (measured {engine_speedup:.2f}×)"
    )


def report_health(idle: list[float], saturated: list[float]) -> None:
    print()
    print(f"{'/health latency':<24}{'samples':>9}{'p50 ms':>10}{'p99 ms':>9}")
    for name, values in (("idle", idle), ("pool saturated", saturated)):
        p50, p99 = percentile(values, 0.5), percentile(values, 0.99)
        print(f"  {name:<22}{len(values):>9}{p50:>10.1f}{p99:>9.1f}")
    print(f"target: p99 under 20 ms while saturated (measured {percentile(saturated, 0.99):.1f})")


def report_upload(file_bytes: int, growth_bytes: int, peak_reset: bool) -> None:
    print()
    ratio = growth_bytes / file_bytes
    print(
        f"Upload of {file_bytes / 2**20:.1f} MiB: server peak RSS grew by "
        f"{growth_bytes / 2**20:.1f} MiB, {ratio:.2f}× the file (target < 3×)"
    )
    if not peak_reset:
        print("  (the peak mark could not be reset: this is the process's lifetime peak)")


def measure_health_while_saturated(
    http: httpx.Client, headers: dict[str, str], image_ids: list[int]
) -> list[float]:
    """Health latencies sampled while batches keep every worker busy (sampling stops while
    jobs are still queued, so the pool is full throughout)."""
    job_ids: list[int] = []
    for _ in range(SATURATING_BATCHES):
        response = http.post(
            "/images/process-batch",
            json={"image_ids": image_ids, "operations": PIPELINE},
            headers=headers,
        )
        response.raise_for_status()
        job_ids += [job["id"] for job in response.json()["jobs"]]
    last_to_start = job_ids[-1]

    def saturated() -> bool:
        return http.get(f"/jobs/{last_to_start}", headers=headers).json()["status"] == "queued"

    while http.get("/jobs?status=running", headers=headers).json()["total"] < WORKERS:
        time.sleep(0.01)
    latencies = health_latencies_ms(http, HEALTH_SAMPLES, saturated)
    while http.get(f"/jobs/{last_to_start}", headers=headers).json()["status"] != "done":
        time.sleep(0.1)
    return latencies


if __name__ == "__main__":
    main()
