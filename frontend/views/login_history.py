"""Login history: every attempt on the account, filterable, with a chart."""

from __future__ import annotations

import streamlit as st

from frontend.auth.session import api_client
from frontend.components.charts import logins_chart, logins_per_day, recent_events
from frontend.components.feedback import empty_state
from frontend.components.login_events import events_table
from frontend.components.paging import current_offset, pager, reset

PAGE_SIZE = 25
CHART_DAYS = 30
FILTERS = {"All": None, "Successful": True, "Failed": False}

client = api_client()
st.title("Login history")
st.caption("Every attempt to log in to your account, from any device.")

counts = logins_per_day(recent_events(client.login_history, days=CHART_DAYS), CHART_DAYS)
st.subheader(f"Last {CHART_DAYS} days")
logins_chart(counts)

choice = st.segmented_control(
    "Show", list(FILTERS), default="All", key="history_filter", on_change=reset, args=("history",)
)
history = client.login_history(
    limit=PAGE_SIZE,
    offset=current_offset("history", PAGE_SIZE),
    success=FILTERS[choice or "All"],
)
if history["items"]:
    events_table(history["items"])
    pager("history", history["total"], PAGE_SIZE)
else:
    empty_state("Nothing here", "No login attempts match this filter.", ":material/history:")
