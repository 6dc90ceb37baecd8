"""Waiting for jobs that another process runs (Celery workers): one poller per API process.

Every `wait=true` request registers its job here and awaits a future; a single task checks all
awaited, unfinished jobs in one query every POLL_INTERVAL_S and resolves the futures of those
that finished. No thread is held per waiter, and the database sees one small query per
interval however many requests wait (none while nobody waits). Polling rather than PostgreSQL's
LISTEN/NOTIFY: it works the same on SQLite, needs no connection held open per process, and
costs 75 ms of latency on average (see the README's figures).
"""

from __future__ import annotations

import asyncio
import logging

from starlette.concurrency import run_in_threadpool

from api.core.db import Database
from api.services.jobs import finished_job_ids

log = logging.getLogger("pixelgate.jobs")

POLL_INTERVAL_S = 0.15


class JobWaiter:
    def __init__(self, database: Database, interval_s: float = POLL_INTERVAL_S) -> None:
        self.database = database
        self.interval_s = interval_s
        self._waiters: dict[int, list[asyncio.Future[None]]] = {}
        self._poller: asyncio.Task[None] | None = None

    async def wait(self, job_id: int) -> None:
        """Returns once the job is done or failed; cancelling the wait leaves the job alone."""
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.setdefault(job_id, []).append(future)
        if self._poller is None or self._poller.done():
            self._poller = asyncio.create_task(self._poll())
        try:
            await future
        finally:
            futures = self._waiters.get(job_id, [])
            if future in futures:
                futures.remove(future)
            if not futures:
                self._waiters.pop(job_id, None)

    async def _poll(self) -> None:
        while self._waiters:
            await asyncio.sleep(self.interval_s)
            job_ids = list(self._waiters)
            if not job_ids:
                break
            try:
                finished = await run_in_threadpool(finished_job_ids, self.database, job_ids)
            except Exception:
                log.warning("could not check awaited jobs; trying again", exc_info=True)
                continue
            for job_id in finished:
                for future in self._waiters.pop(job_id, []):
                    if not future.done():
                        future.set_result(None)

    async def close(self) -> None:
        if self._poller is not None:
            self._poller.cancel()
            await asyncio.gather(self._poller, return_exceptions=True)
