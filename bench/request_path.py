"""Request-path benchmark: `python -m bench.request_path` (or `make bench`). Prints figures.

For each backend (SQLite, and PostgreSQL on a fresh database), a real API server is started the
way production starts it (`scripts/start.sh`: migrations with alembic, one uvicorn worker),
next to `bench/bare_app.py` (one `async def` endpoint) served by the same uvicorn with the same
options. wrk drives both with 16 connections:

1. `GET /auth/me` with a Bearer token against the bare endpoint, the two taking turns (best of
   the rounds each): req/s, p50, p99 and their ratio; and, between them, the app's cheapest
   route (`/auth/password-policy`: its middleware and routing, no token, no database).
2. `POST /auth/refresh` by 16 sessions at once, each rotating its own token: p99; then 16
   concurrent refreshes of one token, of which exactly one may win.
3. Logins at BCRYPT_ROUNDS=12 by 16 connections: logins/s against what the cores allow
   (cores ÷ one hash's time), and `/health` latency sampled meanwhile.
4. Upload, list and thumbnail by 16 connections each: req/s, p50, p99; and a thumbnail
   revalidated with its `ETag` (304, nothing rendered).

Not a test: nothing is asserted; every figure is printed next to its target.
"""

from __future__ import annotations

import argparse
import http.client
import math
import os
import shutil
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import httpx

from api.core.security import PasswordHasher
from bench import wrk
from bench.processing import machine, make_photo, percentile
from tests.support.accounts import DEFAULT_PASSWORD, bearer, login, signup
from tests.support.databases import fresh_postgres_database
from tests.support.servers import LiveClient, api_env, free_port, running_process

POSTGRES_SERVER_URL = os.environ.get(
    "TEST_POSTGRES_URL", "postgresql+psycopg2://postgres@127.0.0.1:5432/postgres"
)
REPO_ROOT = Path(__file__).resolve().parent.parent
CONNECTIONS = 16
BCRYPT_ROUNDS = 12
CORES = os.cpu_count() or 1
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
HEALTH_PROBE_INTERVAL_S = 0.02
# The uvicorn options scripts/start.sh passes when FORWARDED_ALLOW_IPS is empty.
UVICORN_OPTIONS = ["--workers", "1", "--no-proxy-headers", "--no-access-log", "--no-server-header"]

# The app's cheapest route (no token, no database): what its middleware and routing cost.
FLOOR_PATH = "/auth/password-policy"

TARGETS = {
    "me_ratio": {"sqlite": 0.35, "postgresql": 0.30},
    "refresh_p99_ms": 150.0,
    "login_efficiency": 0.9,
    "health_p99_ms": 20.0,
}


@dataclass(frozen=True)
class Plan:
    rounds: int
    seconds: float
    login_seconds: float


FULL = Plan(rounds=3, seconds=5, login_seconds=10)
QUICK = Plan(rounds=1, seconds=2, login_seconds=5)


@dataclass(frozen=True)
class Server:
    url: str
    pid: int

    def cpu_seconds(self) -> float:
        """User and system CPU time of the process so far, all threads together."""
        fields = Path(f"/proc/{self.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


@dataclass(frozen=True)
class Measured:
    result: wrk.LoadResult
    cpu_us_per_request: float


def measured(server: Server, run: Callable[[], wrk.LoadResult]) -> Measured:
    """Runs a load against `server`, noting the CPU time it spent on the requests.

    CPU time per request barely moves when other work competes for the cores, unlike rates
    and latencies: it is the figure to compare runs made at different times by.
    """
    cpu_before = server.cpu_seconds()
    result = run()
    cpu = server.cpu_seconds() - cpu_before
    return Measured(result, cpu / max(result.requests, 1) * 1e6)


@dataclass
class Best:
    """The least disturbed figures of several rounds: highest rate, lowest percentiles."""

    rate: float = 0.0
    p50_ms: float = math.inf
    p99_ms: float = math.inf
    cpu_us: float = math.inf  # the server's CPU time per request (all its threads)
    errors: int = 0

    def add(self, measured: Measured) -> None:
        result = measured.result
        self.rate = max(self.rate, result.rate)
        self.p50_ms = min(self.p50_ms, result.p50_ms)
        self.p99_ms = min(self.p99_ms, result.p99_ms)
        self.cpu_us = min(self.cpu_us, measured.cpu_us_per_request)
        self.errors += result.errors


@dataclass
class BackendReport:
    backend: str
    bare: Best = field(default_factory=Best)
    floor: Best = field(default_factory=Best)  # our app's route that needs no token, no database
    me: Best = field(default_factory=Best)
    refresh: Best = field(default_factory=Best)
    refresh_winners: int = 0
    refresh_racers: int = 0
    hash_ms: float = math.inf  # one hash alone
    all_cores_hash_ms: float = math.inf  # one hash while every core hashes
    logins: Best = field(default_factory=Best)
    health_during_logins: list[float] = field(default_factory=list)
    health_p99_ms: float = math.inf
    images: dict[str, Best] = field(default_factory=dict)


# --- servers --------------------------------------------------------------------------------


@contextmanager
def database(backend: str, workdir: Path) -> Iterator[str]:
    if backend == "sqlite":
        yield f"sqlite:///{workdir / 'bench.db'}"
        return
    with fresh_postgres_database(POSTGRES_SERVER_URL) as url:
        yield url


@contextmanager
def api_server(database_url: str, workdir: Path) -> Iterator[Server]:
    """The API as production starts it: scripts/start.sh migrates, then execs one uvicorn."""
    port = free_port()
    env = api_env(
        database_url,
        workdir / "images",
        BCRYPT_ROUNDS=str(BCRYPT_ROUNDS),
        API_HOST="127.0.0.1",
        API_PORT=str(port),
        API_WORKERS="1",
        FORWARDED_ALLOW_IPS="",
        PYTHON=sys.executable,
    )
    url = f"http://127.0.0.1:{port}"
    args = [str(REPO_ROOT / "scripts" / "start.sh")]
    with running_process(args, env, f"{url}/health", workdir / "api.log", timeout=120) as process:
        yield Server(url, process.pid)


@contextmanager
def bare_server(workdir: Path) -> Iterator[Server]:
    port = free_port()
    args = [sys.executable, "-m", "uvicorn", "bench.bare_app:app", "--host", "127.0.0.1"]
    args += ["--port", str(port), *UVICORN_OPTIONS]
    url = f"http://127.0.0.1:{port}"
    with running_process(args, dict(os.environ), f"{url}/bare", workdir / "bare.log") as process:
        yield Server(url, process.pid)


# --- accounts and inputs --------------------------------------------------------------------


def logins(base_url: str, username: str, count: int) -> list[dict[str, str]]:
    """`count` fresh sessions of one account (their token pairs), logged in at once."""

    def one(_: int) -> dict[str, str]:
        response = login(LiveClient(base_url), username)
        response.raise_for_status()
        return response.json()

    with ThreadPoolExecutor(count) as pool:
        return list(pool.map(one, range(count)))


def upload_request(url: str, headers: dict[str, str], photo: bytes, body_file: Path) -> wrk.Request:
    """POST /images with `photo` as the multipart field `file` (httpx writes the body)."""
    encoded = httpx.Request("POST", url, files={"file": ("photo.jpg", photo, "image/jpeg")})
    body_file.write_bytes(encoded.read())
    headers = {**headers, "Content-Type": encoded.headers["content-type"]}
    return wrk.Request("POST", "/images", headers, body_file)


# --- measurements ---------------------------------------------------------------------------


def interleaved(plan: Plan, runs: Sequence[tuple[Best, Callable[[], Measured]]]) -> None:
    """Every run once per round, taking turns, so drift of the shared machine hits them alike."""
    for _ in range(plan.rounds):
        for best, run in runs:
            best.add(run())


def hash_seconds(rounds: int, samples: int = 5, at_once: int = 1) -> float:
    """One bcrypt verify at `rounds`, `at_once` of them hashing side by side (bcrypt lets go of
    the GIL): the least disturbed of a few. With every core hashing, each hash takes longer
    than alone on an idle machine (the CPU clocks lower, caches are shared): that is the rate
    the cores allow when they are all busy."""
    hasher = PasswordHasher(rounds, concurrency=at_once)
    stored = hasher.hash(DEFAULT_PASSWORD)
    best = math.inf
    with ThreadPoolExecutor(at_once) as pool:
        for _ in range(samples):
            started = time.perf_counter()
            list(pool.map(lambda _: hasher.verify(DEFAULT_PASSWORD, stored), range(at_once)))
            best = min(best, time.perf_counter() - started)
    return best


def closed_loop(
    base_url: str, request: wrk.Request, *, connections: int, seconds: float
) -> wrk.LoadResult:
    """Each connection sends `request` again as soon as it is answered, until `seconds` are up.

    For requests that take whole seconds under load (logins): wrk drops the requests still in
    flight when its time is up, which at 16 bcrypt hashes in flight undercounts by several
    percent. Here every request sent is awaited, and the rate is the requests over the time
    from the start to the last answer, so the server is busy all along the measured span.
    """
    parts = urlsplit(base_url)
    body = request.body_file.read_bytes() if request.body_file else None
    started = time.perf_counter()
    deadline = started + seconds

    def connection_loop(_: int) -> tuple[list[float], list[float], int]:
        connection = http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=120)
        latencies, finished, errors = [], [], 0
        try:
            while time.perf_counter() < deadline:
                sent = time.perf_counter()
                connection.request(request.method, request.path, body, request.headers)
                response = connection.getresponse()
                response.read()
                done = time.perf_counter()
                latencies.append((done - sent) * 1000)
                finished.append(done)
                errors += response.status >= 400
        finally:
            connection.close()
        return latencies, finished, errors

    with ThreadPoolExecutor(connections) as pool:
        outcomes = list(pool.map(connection_loop, range(connections)))
    latencies = [value for outcome in outcomes for value in outcome[0]]
    last_answer = max(value for outcome in outcomes for value in outcome[1])
    return wrk.LoadResult(
        requests=len(latencies),
        seconds=last_answer - started,
        p50_ms=percentile(latencies, 0.5),
        p99_ms=percentile(latencies, 0.99),
        max_ms=max(latencies),
        errors=sum(outcome[2] for outcome in outcomes),
    )


@contextmanager
def health_probe(base_url: str) -> Iterator[list[float]]:
    """Samples `GET /health` latency (ms) on one kept-alive connection until the block ends."""
    parts = urlsplit(base_url)
    latencies: list[float] = []
    stop = threading.Event()

    def probe() -> None:
        connection = http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=30)
        try:
            while not stop.is_set():
                started = time.perf_counter()
                connection.request("GET", "/health")
                response = connection.getresponse()
                response.read()
                if response.status == 200:
                    latencies.append((time.perf_counter() - started) * 1000)
                stop.wait(HEALTH_PROBE_INTERVAL_S)
        finally:
            connection.close()

    thread = threading.Thread(target=probe, daemon=True)
    thread.start()
    try:
        yield latencies
    finally:
        stop.set()
        thread.join(timeout=60)


def concurrent_refresh_winners(base_url: str, refresh_token: str, racers: int) -> int:
    """How many of `racers` simultaneous refreshes of one token were answered 200."""
    barrier = threading.Barrier(racers)
    body = {"refresh_token": refresh_token}

    def race(_: int) -> int:
        client = LiveClient(base_url)
        client.get("/health")  # connected before the start, so all arrive together
        barrier.wait(timeout=30)
        return client.post("/auth/refresh", json=body).status_code

    with ThreadPoolExecutor(racers) as pool:
        statuses = list(pool.map(race, range(racers)))
    return statuses.count(200)


def measure_backend(backend: str, plan: Plan, workdir: Path) -> BackendReport:
    report = BackendReport(backend)
    scripts = workdir / "wrk"
    scripts.mkdir(parents=True, exist_ok=True)

    def load(server: Server, request: wrk.Request) -> Measured:
        return measured(
            server,
            lambda: wrk.run(
                server.url,
                request,
                connections=CONNECTIONS,
                seconds=plan.seconds,
                script_dir=scripts,
            ),
        )

    with ExitStack() as stack:
        database_url = stack.enter_context(database(backend, workdir))
        api = stack.enter_context(api_server(database_url, workdir))
        bare = stack.enter_context(bare_server(workdir))

        client = LiveClient(api.url)
        signup(client, "bench_user").raise_for_status()
        (session,) = logins(api.url, "bench_user", 1)
        me_headers = bearer(session["access_token"])

        print(f"[{backend}] /auth/me against the bare endpoint", flush=True)
        runs = [
            (report.bare, lambda: load(bare, wrk.Request("GET", "/bare", {}))),
            (report.floor, lambda: load(api, wrk.Request("GET", FLOOR_PATH, {}))),
            (report.me, lambda: load(api, wrk.Request("GET", "/auth/me", me_headers))),
        ]
        interleaved(plan, runs)

        print(f"[{backend}] refresh by {CONNECTIONS} sessions", flush=True)
        for _ in range(plan.rounds):
            pairs = logins(api.url, "bench_user", CONNECTIONS)
            tokens = [pair["refresh_token"] for pair in pairs]
            report.refresh.add(
                measured(
                    api,
                    lambda tokens=tokens: wrk.run_refresh_chains(
                        api.url, tokens, seconds=plan.seconds, script_dir=scripts
                    ),
                )
            )
        (racing,) = logins(api.url, "bench_user", 1)
        report.refresh_racers = CONNECTIONS
        report.refresh_winners = concurrent_refresh_winners(
            api.url, racing["refresh_token"], CONNECTIONS
        )

        print(f"[{backend}] login storm at BCRYPT_ROUNDS={BCRYPT_ROUNDS}", flush=True)
        body_file = scripts / "login.json"
        body_file.write_text(f'{{"username": "bench_user", "password": "{DEFAULT_PASSWORD}"}}')
        login_request = wrk.Request(
            "POST", "/auth/login", {"Content-Type": "application/json"}, body_file
        )
        health_p99s = []
        for _ in range(plan.rounds):
            report.hash_ms = min(report.hash_ms, hash_seconds(BCRYPT_ROUNDS) * 1000)
            report.all_cores_hash_ms = min(
                report.all_cores_hash_ms, hash_seconds(BCRYPT_ROUNDS, at_once=CORES) * 1000
            )
            with health_probe(api.url) as latencies:
                report.logins.add(
                    measured(
                        api,
                        lambda: closed_loop(
                            api.url,
                            login_request,
                            connections=CONNECTIONS,
                            seconds=plan.login_seconds,
                        ),
                    )
                )
            report.health_during_logins += latencies
            health_p99s.append(percentile(latencies, 0.99))
        report.health_p99_ms = min(health_p99s)

        print(f"[{backend}] upload, list, thumbnail", flush=True)
        make_photo(workdir / "photo.jpg", seed=7)
        photo = (workdir / "photo.jpg").read_bytes()
        upload = upload_request(f"{api.url}/images", me_headers, photo, scripts / "upload.body")
        image_id = client.post(
            "/images", files={"file": ("photo.jpg", photo, "image/jpeg")}, headers=me_headers
        ).json()["id"]
        thumbnail_path = f"/images/{image_id}/thumbnail"
        thumbnail_tag = client.get(thumbnail_path, headers=me_headers).headers["etag"]
        revalidation = {**me_headers, "If-None-Match": thumbnail_tag}
        requests = {
            "upload": upload,
            "list": wrk.Request("GET", "/images", me_headers),
            "thumbnail": wrk.Request("GET", thumbnail_path, me_headers),
            "thumbnail 304": wrk.Request("GET", thumbnail_path, revalidation),
        }
        report.images = {name: Best() for name in requests}
        interleaved(
            plan,
            [
                (report.images[name], lambda request=request: load(api, request))
                for name, request in requests.items()
            ],
        )
    return report


# --- report ---------------------------------------------------------------------------------


def verdict(ok: bool) -> str:
    return "PASS" if ok else "FAIL"


def print_report(report: BackendReport) -> None:
    backend = report.backend
    print()
    print(f"== {backend}: one uvicorn worker, {CONNECTIONS} connections ==")
    print(f"{'':<30}{'req/s':>9}{'p50 ms':>9}{'p99 ms':>9}{'CPU µs/req':>12}{'errors':>8}")
    rows = [("bare async endpoint", report.bare), (f"GET {FLOOR_PATH}", report.floor)]
    rows.append(("GET /auth/me", report.me))
    rows.append(("POST /auth/refresh", report.refresh))
    rows.append((f"POST /auth/login (bcrypt {BCRYPT_ROUNDS})", report.logins))
    rows += [(f"{name} (images)", best) for name, best in report.images.items()]
    for name, best in rows:
        print(
            f"{name:<30}{best.rate:>9.1f}{best.p50_ms:>9.1f}{best.p99_ms:>9.1f}"
            f"{best.cpu_us:>12.0f}{best.errors:>8}"
        )

    print(
        f"{FLOOR_PATH} (the app's middleware and routing, no token, no database) ÷ bare: "
        f"{report.floor.rate / report.bare.rate:.3f}; /auth/me ÷ {FLOOR_PATH}: "
        f"{report.me.rate / report.floor.rate:.3f}"
    )
    me_ratio = report.me.rate / report.bare.rate
    target = TARGETS["me_ratio"][backend]
    print(
        f"/auth/me ÷ bare: {me_ratio:.3f} (target ≥ {target}) {verdict(me_ratio >= target)}; "
        f"in server CPU per request {report.bare.cpu_us / report.me.cpu_us:.3f}"
    )
    target = TARGETS["refresh_p99_ms"]
    print(
        f"refresh p99: {report.refresh.p99_ms:.1f} ms (target < {target:.0f} ms) "
        f"{verdict(report.refresh.p99_ms < target and report.refresh.errors == 0)}"
    )
    one_winner = report.refresh_winners == 1
    print(
        f"concurrent refreshes of one token: {report.refresh_winners} of "
        f"{report.refresh_racers} won (exactly 1 allowed) {verdict(one_winner)}"
    )
    target = TARGETS["login_efficiency"]
    for hash_ms, how in (
        (report.hash_ms, "one hash alone"),
        (report.all_cores_hash_ms, f"each of {CORES} hashing at once"),
    ):
        allowed = CORES / (hash_ms / 1000)
        efficiency = report.logins.rate / allowed
        print(
            f"logins: {report.logins.rate:.2f}/s of {allowed:.2f}/s the cores allow "
            f"({CORES} cores ÷ {hash_ms:.0f} ms per hash, {how}) = {efficiency:.2f} "
            f"(target ≥ {target}) {verdict(efficiency >= target and report.logins.errors == 0)}"
        )
    target = TARGETS["health_p99_ms"]
    samples = report.health_during_logins
    print(
        f"/health during the login storm: p50 {percentile(samples, 0.5):.1f} ms, "
        f"p99 {report.health_p99_ms:.1f} ms over {len(samples)} samples "
        f"(target < {target:.0f} ms) {verdict(report.health_p99_ms < target)}"
    )


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="one short round of each")
    parser.add_argument(
        "--backend", choices=["sqlite", "postgresql", "both"], default="both", help="databases"
    )
    parser.add_argument(
        "--keep", action="store_true", help="keep each backend's server logs and database"
    )
    args = parser.parse_args(argv)
    if not wrk.available():
        sys.exit("wrk is not installed (scripts/ensure-services.sh installs it)")
    plan = QUICK if args.quick else FULL
    backends = ["sqlite", "postgresql"] if args.backend == "both" else [args.backend]

    print(f"machine: {machine()}; load average {os.getloadavg()[0]:.2f} (1 min)")
    print(
        f"plan: {plan.rounds} round(s), {plan.seconds:g} s per run "
        f"({plan.login_seconds:g} s for logins); each figure the best of the rounds"
    )
    reports = []
    for backend in backends:
        workdir = Path(tempfile.mkdtemp(prefix=f"pixelgate-bench-{backend}-"))
        try:
            reports.append(measure_backend(backend, plan, workdir))
        finally:
            if args.keep:
                print(f"[{backend}] kept {workdir}")
            else:
                shutil.rmtree(workdir, ignore_errors=True)
    for report in reports:
        print_report(report)
    print(f"\nload average afterwards: {os.getloadavg()[0]:.2f} (1 min)")


if __name__ == "__main__":
    main()
