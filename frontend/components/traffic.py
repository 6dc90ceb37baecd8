"""Request and error rates for the Operations page.

The API reports cumulative request totals (since its processes started). The page keeps the
totals of each of its refreshes in the session and draws the rate between consecutive ones, so
the chart fills in while the page stays open; a total smaller than the one before means the API
restarted, and the history starts again.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from itertools import pairwise
from typing import Any

import pandas as pd

from frontend.components.formatting import browser_timezone, local_time, parse_time

HISTORY = 90  # samples kept: 15 minutes at one per 10 seconds
REQUESTS_PER_S = "Requests/s"
ERROR_PERCENT = "Server errors (%)"


@dataclass(frozen=True, slots=True)
class Sample:
    at: datetime
    requests: int
    server_errors: int


def remember(samples: list[Sample], overview: dict[str, Any]) -> list[Sample]:
    """`samples` plus the totals of `overview` (an answer of GET /admin/operations)."""
    at = parse_time(overview["generated_at"])
    if at is None:
        raise ValueError("the answer has no generated_at")
    totals = overview["requests"]
    new = Sample(at, totals["requests"], totals["server_errors"])
    if samples and (new.requests < samples[-1].requests or new.at <= samples[-1].at):
        samples = []
    return [*samples, new][-HISTORY:]


def rates(samples: list[Sample]) -> pd.DataFrame:
    """One row per pair of consecutive samples: requests per second and the share of them
    that were server errors, at the time of the later sample."""
    rows = []
    for before, after in pairwise(samples):
        seconds = (after.at - before.at).total_seconds()
        requests = after.requests - before.requests
        errors = after.server_errors - before.server_errors
        rows.append(
            {
                "Time": after.at.astimezone(browser_timezone()),
                REQUESTS_PER_S: round(requests / seconds, 2),
                ERROR_PERCENT: round(100 * errors / requests, 1) if requests else 0.0,
            }
        )
    return pd.DataFrame(rows, columns=["Time", REQUESTS_PER_S, ERROR_PERCENT])


def series_frame(points: list[dict[str, Any]], labels: dict[str, str]) -> pd.DataFrame:
    """A series of the API (`[{start, counts}]`) as a frame: a `Time` column (local time) and
    one column per key of `labels` (API key -> column name)."""
    return pd.DataFrame(
        [
            {
                "Time": local_time(point["start"]),
                **{name: point["counts"].get(key, 0) for key, name in labels.items()},
            }
            for point in points
        ],
        columns=["Time", *labels.values()],
    )
