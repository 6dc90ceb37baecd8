"""The state of the system for operators: gauges read from the database at scrape time, and
the figures of the admin Operations page (request totals from the metrics, job throughput and
login failures from the database)."""

from __future__ import annotations

import logging
from collections import Counter as Tally
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from prometheus_client.metrics_core import GaugeMetricFamily, Metric
from sqlalchemy import func, select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from api.core.db import Database
from api.core.metrics_exposition import MetricsSource
from api.models import EventState, Job, JobStatus, LoginEvent, OutboxEvent, utcnow
from api.services.login_history import SUCCESS_OUTCOME

log = logging.getLogger("pixelgate.metrics")

SERIES_POINTS = 12
TOP_ROUTES = 20


def unfinished_job_counts(db: Session) -> dict[str, int]:
    """Queued and running jobs (one indexed aggregate)."""
    counts = {JobStatus.QUEUED.value: 0, JobStatus.RUNNING.value: 0}
    rows = db.execute(
        select(Job.status, func.count()).where(Job.status.in_(counts)).group_by(Job.status)
    )
    for status, count in rows:
        counts[status] = count
    return counts


def outbox_counts(db: Session) -> dict[str, int]:
    """Outbox rows by delivery state, every state present (one indexed aggregate)."""
    counts = {state.value: 0 for state in EventState}
    for state, count in db.execute(
        select(OutboxEvent.state, func.count()).group_by(OutboxEvent.state)
    ):
        counts[state] = count
    return counts


class DatabaseStateCollector:
    """`pixelgate_jobs_queued`, `pixelgate_jobs_running` and `pixelgate_events{state}`, read
    when scraped, so every process and host reports the same truth. With the database down
    they are left out of the scrape (and logged) rather than failing it."""

    def __init__(self, database: Database) -> None:
        self._database = database

    def collect(self) -> Iterator[Metric]:
        try:
            with self._database.session() as db:
                jobs = unfinished_job_counts(db)
                events = outbox_counts(db)
        except SQLAlchemyError as exc:
            log.warning("database gauges left out of the scrape: %s", type(exc).__name__)
            return
        yield GaugeMetricFamily(
            "pixelgate_jobs_queued", "Jobs waiting for a worker.", jobs[JobStatus.QUEUED.value]
        )
        yield GaugeMetricFamily(
            "pixelgate_jobs_running", "Jobs on a worker now.", jobs[JobStatus.RUNNING.value]
        )
        by_state = GaugeMetricFamily(
            "pixelgate_events", "Outbox rows by delivery state.", labels=["state"]
        )
        for state, count in events.items():
            by_state.add_metric([state], count)
        yield by_state


# --- the Operations page --------------------------------------------------------------------


@dataclass
class RouteFigures:
    route: str
    method: str
    requests: int = 0
    client_errors: int = 0
    server_errors: int = 0


@dataclass
class RequestTotals:
    """Since the API processes of this host started, summed over them."""

    requests: int = 0
    client_errors: int = 0
    server_errors: int = 0
    routes: list[RouteFigures] = field(default_factory=list)


@dataclass
class SeriesPoint:
    start: datetime
    counts: dict[str, int]


@dataclass
class Overview:
    generated_at: datetime
    window_minutes: int
    bucket_seconds: int
    requests: RequestTotals
    api_processes: int
    worker_processes: int
    jobs_queued: int
    jobs_running: int
    jobs: list[SeriesPoint]
    logins: list[SeriesPoint]
    login_failures: dict[str, int]
    events: dict[str, int]


def request_totals(source: MetricsSource) -> RequestTotals:
    totals = RequestTotals()
    by_route: dict[tuple[str, str], RouteFigures] = {}
    for sample in source.samples("pixelgate_http_requests_total"):
        count = int(sample.value)
        route, method, status = (sample.labels[k] for k in ("route", "method", "status"))
        figures = by_route.setdefault((route, method), RouteFigures(route, method))
        figures.requests += count
        totals.requests += count
        if status.startswith("5"):
            figures.server_errors += count
            totals.server_errors += count
        elif status.startswith("4"):
            figures.client_errors += count
            totals.client_errors += count
    totals.routes = sorted(by_route.values(), key=lambda f: (-f.requests, f.route, f.method))[
        :TOP_ROUTES
    ]
    return totals


def _series(
    moments: list[tuple[datetime, str]], since: datetime, bucket: timedelta, keys: list[str]
) -> list[SeriesPoint]:
    points = [
        SeriesPoint(since + bucket * index, dict.fromkeys(keys, 0))
        for index in range(SERIES_POINTS)
    ]
    for moment, key in moments:
        index = min(int((moment - since) / bucket), SERIES_POINTS - 1)
        if index >= 0:
            points[index].counts[key] = points[index].counts.get(key, 0) + 1
    return points


def overview(db: Session, source: MetricsSource, window: timedelta) -> Overview:
    """Figures of the last `window`, in `SERIES_POINTS` equal buckets, oldest first."""
    now = utcnow()
    since = now - window
    bucket = window / SERIES_POINTS
    finished = [
        (moment, status)
        for moment, status in db.execute(
            select(Job.finished_at, Job.status).where(
                Job.status.in_((JobStatus.DONE.value, JobStatus.FAILED.value)),
                Job.finished_at >= since,
            )
        )
    ]
    attempts = [
        (moment, reason or SUCCESS_OUTCOME)
        for moment, reason in db.execute(
            select(LoginEvent.created_at, LoginEvent.failure_reason).where(
                LoginEvent.created_at >= since
            )
        )
    ]
    login_outcomes = [
        (moment, "succeeded" if reason == SUCCESS_OUTCOME else "failed")
        for moment, reason in attempts
    ]
    failures = Tally(reason for _moment, reason in attempts if reason != SUCCESS_OUTCOME)
    unfinished = unfinished_job_counts(db)
    return Overview(
        generated_at=now,
        window_minutes=round(window.total_seconds() / 60),
        bucket_seconds=round(bucket.total_seconds()),
        requests=request_totals(source),
        api_processes=int(source.total("pixelgate_api_processes")),
        worker_processes=int(source.total("pixelgate_worker_processes")),
        jobs_queued=unfinished[JobStatus.QUEUED.value],
        jobs_running=unfinished[JobStatus.RUNNING.value],
        jobs=_series(finished, since, bucket, [JobStatus.DONE.value, JobStatus.FAILED.value]),
        logins=_series(login_outcomes, since, bucket, ["succeeded", "failed"]),
        login_failures=dict(sorted(failures.items())),
        events=outbox_counts(db),
    )
