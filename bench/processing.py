"""Processing benchmark: `python -m bench.processing` (or `make bench`). Prints figures.

1. A batch of 16 images of 2000×2000 through one pipeline (blur radius 5, then sharpen), run
   in-process sequentially, through a thread pool of the engine's size, and through the engine
   over HTTP (a real uvicorn server): once as one `POST /images/process-batch`, once as one
   `POST /images/{id}/process` with `wait: true` per image, all at once. All of them run the
   same worker function (read the file, apply, write the result), so only the parallelism and
   the way there differ.
   The same batch through PROCESSING_BACKEND=celery: a second server whose jobs go over the
   local RabbitMQ (a fresh vhost) to a real `celery -A api.worker worker` with as many pool
   processes, side by side with the engine (both on SQLite and local storage, both timed by
   the jobs' `finished_at`).
2. Per-job overhead: 64 images of 256×256 through one batch request, engine and Celery.
3. `/health` latency, p50 and p99, idle and with the pool (or the Celery workers) saturated.
4. Peak memory growth of the server process during a 10 MB upload.

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
from tests.support.broker import fresh_rabbitmq_vhost
from tests.support.databases import migrate
from tests.support.servers import api_env, free_port, running_process
from tests.support.workers import celery_worker

IMAGES = 16
SMALL_IMAGES = 64
SMALL_SIDE = 256
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
    images: int = IMAGES

    @property
    def images_per_second(self) -> float:
        return self.images / self.seconds


# --- inputs ---------------------------------------------------------------------------------


def make_photo(path: Path, seed: int, side: int = SIDE) -> None:
    """A photo-like square JPEG: smooth gradients with fine noise (compresses like a photo)."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:side, 0:side].astype(np.float32) / side
    channels = [
        128 + 100 * np.sin(6 * x + seed) * np.cos(4 * y),
        128 + 100 * np.cos(5 * y + seed),
        128 + 100 * np.sin(3 * (x + y)),
    ]
    pixels = np.dstack(channels) + rng.normal(0, 12, (side, side, 3))
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
    images: int = IMAGES


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
        Timing(variant.name, seconds, variant.workers, variant.images)
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
def server(workdir: Path, name: str, **extra: str) -> Iterator[tuple[str, int, dict[str, str]]]:
    """A real uvicorn on a SQLite file of its own (PROCESS_WORKERS = CPU count); yields its
    URL, pid and environment."""
    database_url = f"sqlite:///{workdir / f'{name}.db'}"
    migrate(database_url)
    env = api_env(database_url, workdir / f"images-{name}", PROCESS_WORKERS=str(WORKERS))
    env.update(MAX_QUEUED_JOBS="1000", LOG_LEVEL="WARNING", **extra)
    port = free_port()
    args = [sys.executable, "-m", "uvicorn", "api.main:app", "--port", str(port)]
    args += ["--host", "127.0.0.1", "--no-access-log"]
    url = f"http://127.0.0.1:{port}"
    with running_process(args, env, f"{url}/health", workdir / f"{name}.log") as process:
        yield url, process.pid, env


@contextmanager
def celery_cluster(workdir: Path) -> Iterator[tuple[str, int]]:
    """A server with PROCESSING_BACKEND=celery and one worker host of WORKERS pool processes,
    on a fresh vhost of the local RabbitMQ; yields the server's URL and pid."""
    with (
        fresh_rabbitmq_vhost() as broker_url,
        server(workdir, "celery", PROCESSING_BACKEND="celery", CELERY_BROKER_URL=broker_url) as (
            url,
            pid,
            env,
        ),
        celery_worker(env, workdir / "worker.log", concurrency=WORKERS),
    ):
        yield url, pid


class Cluster:
    """One way of processing over HTTP: its client, account and uploaded images."""

    def __init__(self, name: str, url: str, pid: int) -> None:
        self.name = name
        self.pid = pid
        self.http = httpx.Client(base_url=url, timeout=300)
        self.headers = register(self.http, "bench_user")["headers"]
        self.image_ids: list[int] = []
        self.small_ids: list[int] = []

    def upload_all(self, sources: Sequence[Path], small: Sequence[Path]) -> None:
        self.image_ids = [upload(self.http, self.headers, path) for path in sources]
        self.small_ids = [upload(self.http, self.headers, path) for path in small]
        # Start every worker once (imports, buffers, connections).
        run_wait_requests(self.http, self.headers, self.image_ids[:WORKERS])

    def batch(self) -> float:
        return run_batch_request(self.http, self.headers, self.image_ids)

    def waits(self) -> float:
        return run_wait_requests(self.http, self.headers, self.image_ids)

    def small_batch(self) -> float:
        return run_batch_request(self.http, self.headers, self.small_ids)


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
        small = []
        for index in range(SMALL_IMAGES):
            small.append(workdir / f"small-{index}.jpg")
            make_photo(small[-1], index, SMALL_SIDE)

        run_task(tasks_for(sources[:1], workdir / "warm")[0])  # imports and caches, once
        upload_file = workdir / "upload.png"
        upload_size = make_upload_file(upload_file)
        with (
            server(workdir, "engine") as (url, pid, _env),
            celery_cluster(workdir) as (celery_url, celery_pid),
        ):
            engine = Cluster("engine", url, pid)
            celery = Cluster("celery", celery_url, celery_pid)
            for cluster in (engine, celery):
                cluster.upload_all(sources, small)
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
                    Variant(f"engine, 1 batch request ({WORKERS})", WORKERS, engine.batch),
                    Variant(f"engine, {IMAGES} wait requests ({WORKERS})", WORKERS, engine.waits),
                    Variant(f"celery, 1 batch request ({WORKERS})", WORKERS, celery.batch),
                    Variant(f"celery, {IMAGES} wait requests ({WORKERS})", WORKERS, celery.waits),
                ]
            )
            small_timings = best_timings(
                [
                    Variant("engine, small jobs", WORKERS, engine.small_batch, SMALL_IMAGES),
                    Variant("celery, small jobs", WORKERS, celery.small_batch, SMALL_IMAGES),
                ]
            )

            health = {
                name: (
                    health_latencies_ms(cluster.http, HEALTH_SAMPLES, lambda: True),
                    measure_health_while_saturated(
                        cluster.http, cluster.headers, cluster.image_ids
                    ),
                )
                for name, cluster in (("engine", engine), ("celery", celery))
            }

            warm_png = workdir / "warm.png"
            Image.new("RGB", (64, 64)).save(warm_png)
            upload(engine.http, engine.headers, warm_png)  # warm the upload path
            rss_before = memory_kib(pid, "VmRSS")
            peak_reset = reset_peak_memory(pid)
            upload(engine.http, engine.headers, upload_file)
            peak = memory_kib(pid, "VmHWM")
    finally:
        shutil.rmtree(workdir, ignore_errors=True)

    verdicts = report_speed(timings)
    verdicts += report_small_jobs(small_timings)
    verdicts += report_health(health)
    verdicts += report_upload(upload_size, (peak - rss_before) * 1024, peak_reset)
    print()
    print("PASS: every target met" if all(verdicts) else "FAIL: a target was missed (see above)")


def verdict(met: bool) -> str:
    return "PASS" if met else "FAIL"


def report_speed(timings: list[Timing]) -> list[bool]:
    """The first timing is the baseline; the engine's and Celery's are through the batch route."""
    by_name = {timing.name.split(" (")[0]: timing for timing in timings}
    baseline = timings[0]
    engine, celery = by_name["engine, 1 batch request"], by_name["celery, 1 batch request"]
    print()
    print(f"{'run':<34}{'seconds':>9}{'images/s':>10}{'speedup':>9}{'efficiency':>12}")
    for timing in timings:
        speedup = baseline.seconds / timing.seconds
        print(
            f"{timing.name:<34}{timing.seconds:>9.2f}{timing.images_per_second:>10.2f}"
            f"{speedup:>8.2f}×{speedup / timing.workers:>12.2f}"
        )
    engine_speedup = baseline.seconds / engine.seconds
    celery_ratio = engine.seconds / celery.seconds
    engine_met, celery_met = engine_speedup >= 1.85, celery_ratio >= 0.95
    print(
        f"{verdict(engine_met)} engine speedup ≥ 1.85× on 2 cores, batch request "
        f"(measured {engine_speedup:.2f}×)"
    )
    print(
        f"{verdict(celery_met)} celery throughput ≥ 0.95× the engine's, batch request "
        f"(measured {celery_ratio:.2f}×)"
    )
    return [engine_met, celery_met]


def report_small_jobs(timings: list[Timing]) -> list[bool]:
    engine, celery = timings
    print()
    print(f"{SMALL_IMAGES} images of {SMALL_SIDE}×{SMALL_SIDE}, one batch request each way:")
    for timing in timings:
        print(
            f"  {timing.name:<22}{timing.seconds:>7.2f} s  {timing.images_per_second:>7.1f} jobs/s"
            f"  {timing.seconds / timing.images * 1000:>6.1f} ms per job"
        )
    ratio = celery.seconds / engine.seconds
    met = ratio <= 2.0
    print(f"{verdict(met)} celery per-job time within 2× the engine's (measured {ratio:.2f}×)")
    return [met]


def report_health(health: dict[str, tuple[list[float], list[float]]]) -> list[bool]:
    print()
    print(f"{'/health latency':<28}{'samples':>9}{'p50 ms':>10}{'p99 ms':>9}")
    verdicts = []
    for backend, (idle, saturated) in health.items():
        for name, values in (("idle", idle), ("workers saturated", saturated)):
            p50, p99 = percentile(values, 0.5), percentile(values, 0.99)
            print(f"  {backend + ', ' + name:<26}{len(values):>9}{p50:>10.1f}{p99:>9.1f}")
        p99 = percentile(saturated, 0.99)
        verdicts.append(p99 < 20)
        print(f"  {verdict(p99 < 20)} {backend}: p99 under 20 ms while saturated ({p99:.1f})")
    return verdicts


def report_upload(file_bytes: int, growth_bytes: int, peak_reset: bool) -> list[bool]:
    print()
    ratio = growth_bytes / file_bytes
    print(
        f"{verdict(ratio < 3)} Upload of {file_bytes / 2**20:.1f} MiB: server peak RSS grew by "
        f"{growth_bytes / 2**20:.1f} MiB, {ratio:.2f}× the file (target < 3×)"
    )
    if not peak_reset:
        print("  (the peak mark could not be reset: this is the process's lifetime peak)")
    return [ratio < 3]


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
