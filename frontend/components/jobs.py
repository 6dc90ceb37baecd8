"""Following processing jobs while they run, and showing their status."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from frontend.auth.session import api_client

FINISHED = ("done", "failed")
POLL_INTERVAL_S = 0.4
# The API fails a job after JOB_TIMEOUT_S (60 by default); stop watching a little later.
FOLLOW_TIMEOUT_S = 90.0
STATUS_BADGES = {
    "queued": ":gray-badge[:material/schedule: queued]",
    "running": ":blue-badge[:material/autorenew: running]",
    "done": ":green-badge[:material/check: done]",
    "failed": ":red-badge[:material/close: failed]",
}


def badge(status: str) -> str:
    return STATUS_BADGES.get(status, status)


def follow_jobs(
    jobs: list[dict[str, Any]],
    on_update: Callable[[list[dict[str, Any]]], None],
    timeout_s: float = FOLLOW_TIMEOUT_S,
) -> list[dict[str, Any]]:
    """Polls the jobs until all are finished (or `timeout_s` passes); reports every change.

    Returns the latest state of every job, in the order given.
    """
    client = api_client()
    latest = {job["id"]: job for job in jobs}
    on_update(list(latest.values()))
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        pending = [job_id for job_id, job in latest.items() if job["status"] not in FINISHED]
        if not pending:
            break
        time.sleep(POLL_INTERVAL_S)
        changed = False
        for job_id in pending:
            job = client.job(job_id)
            changed = changed or job["status"] != latest[job_id]["status"]
            latest[job_id] = job
        if changed:
            on_update(list(latest.values()))
    return list(latest.values())
