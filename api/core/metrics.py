"""The process's own Prometheus metrics: what every API process, Celery worker and event consumer
counts as it works.

prometheus_client decides at import time whether values live in this process's memory or, with
`PROMETHEUS_MULTIPROC_DIR` set in the environment, in files of that directory (one per process),
so that one scrape sums every process that writes there (`api/core/metrics_exposition.py`).
`scripts/start.sh` sets and empties the directory before uvicorn starts its workers.

Gauges that describe the database (queued jobs, outbox rows by state) are not here: they are
read at scrape time by the collector of `api/services/operations.py`, never kept in memory.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram, disable_created_metrics

# `*_created` series double every counter's series and mean nothing summed over processes.
disable_created_metrics()

HTTP_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
OTHER_METHOD = "other"
UNMATCHED_ROUTE = "unmatched"

_REQUEST_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
_JOB_BUCKETS = (0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0)

HTTP_REQUESTS = Counter(
    "pixelgate_http_requests",
    "HTTP requests answered, by route template, method and exact status code.",
    ["route", "method", "status"],
)
HTTP_REQUEST_DURATION = Histogram(
    "pixelgate_http_request_duration_seconds",
    "Time from receiving a request to the end of its answer, by route template and method.",
    ["route", "method"],
    buckets=_REQUEST_BUCKETS,
)
LOGINS = Counter(
    "pixelgate_logins",
    "Login attempts recorded in the login history, by outcome (its failure reason, or success).",
    ["outcome"],
)
LOCKOUTS = Counter(
    "pixelgate_lockouts",
    "Accounts (or attempted names) locked by a run of failed passwords.",
)
RATE_LIMITED = Counter(
    "pixelgate_rate_limited",
    "Requests refused by a per-address rate limit, by limit.",
    ["limit"],
)
REFRESHES = Counter(
    "pixelgate_refreshes",
    "Refresh tokens rotated into a new token pair.",
)
REFRESH_TOKEN_REUSE = Counter(
    "pixelgate_refresh_token_reuse",
    "Rotated refresh tokens presented again; each revoked its session.",
)
JOBS = Counter(
    "pixelgate_jobs",
    "Processing jobs that reached done or failed, by that status.",
    ["status"],
)
JOB_DURATION = Histogram(
    "pixelgate_job_duration_seconds",
    "Run time of finished jobs, from running to done or failed (jobs that never ran are left out).",
    buckets=_JOB_BUCKETS,
)
MAILS = Counter(
    "pixelgate_mails",
    "Mails handed to the mail transport (sent) or refused by it (failed), by template.",
    ["template", "outcome"],
)
API_PROCESSES = Gauge(
    "pixelgate_api_processes",
    "API server processes (uvicorn workers) alive.",
    multiprocess_mode="livesum",
)
WORKER_PROCESSES = Gauge(
    "pixelgate_worker_processes",
    "Processing worker processes: each API process's pool size, or a Celery worker's.",
    multiprocess_mode="livesum",
)


_RequestSeries = tuple[Counter, Histogram]
_request_series: dict[tuple[str, str, int], _RequestSeries] = {}


def observe_request(route: str, method: str, status: int, seconds: float) -> None:
    """Counts one answered request. The labelled series are looked up once and kept: `labels()`
    costs a lock and a dict per call, and this runs on every request."""
    method = method if method in HTTP_METHODS else OTHER_METHOD
    key = (route, method, status)
    series = _request_series.get(key)
    if series is None:
        series = _request_series[key] = (
            HTTP_REQUESTS.labels(route, method, str(status)),
            HTTP_REQUEST_DURATION.labels(route, method),
        )
    counter, histogram = series
    counter.inc()
    histogram.observe(seconds)


def observe_job_finished(status: str, run_seconds: float | None) -> None:
    """A job reached `status` (done or failed); `run_seconds` is None when it never ran."""
    JOBS.labels(status).inc()
    if run_seconds is not None:
        JOB_DURATION.observe(max(run_seconds, 0.0))
