"""Login charts: logins per day, split into successes and failures."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

import pandas as pd
import streamlit as st

from frontend.components.formatting import browser_timezone, local_time

SUCCESS = "Successful"
FAILURE = "Failed"
HISTORY_PAGE = 100


def recent_events(
    fetch_page: Callable[..., dict[str, Any]], days: int, max_events: int = 500
) -> list[dict[str, Any]]:
    """Login events of the last `days` days, newest first (pages until older or `max_events`)."""
    since = datetime.now(browser_timezone()) - timedelta(days=days)
    events: list[dict[str, Any]] = []
    offset = 0
    while len(events) < max_events:
        page = fetch_page(limit=HISTORY_PAGE, offset=offset)
        items = page["items"]
        for event in items:
            moment = local_time(event["created_at"])
            if moment is None or moment < since:
                return events
            events.append(event)
        offset += len(items)
        if not items or offset >= page["total"]:
            break
    return events


def logins_per_day(events: list[dict[str, Any]], days: int) -> pd.DataFrame:
    """One row per day of the window (days without logins count 0), columns success/failure."""
    today = datetime.now(browser_timezone()).date()
    index = [today - timedelta(days=offset) for offset in range(days - 1, -1, -1)]
    counts = pd.DataFrame(0, index=pd.Index(index, name="Day"), columns=[SUCCESS, FAILURE])
    for event in events:
        moment = local_time(event["created_at"])
        if moment is not None and moment.date() in counts.index:
            counts.loc[moment.date(), SUCCESS if event["success"] else FAILURE] += 1
    return counts


def logins_chart(counts: pd.DataFrame) -> None:
    """A stacked bar per day from `logins_per_day`."""
    st.bar_chart(
        counts.reset_index().assign(Day=lambda frame: frame["Day"].astype(str)),
        x="Day",
        y=[SUCCESS, FAILURE],
        color=["#2e9e5b", "#d64545"],
        y_label="Logins",
        height=260,
    )
