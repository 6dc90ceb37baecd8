"""Admin: everyone's login attempts, filterable, with a chart."""

from __future__ import annotations

import streamlit as st

from frontend.auth.session import api_client
from frontend.components.charts import logins_chart, logins_per_day, recent_events
from frontend.components.feedback import empty_state
from frontend.components.login_events import events_table
from frontend.components.paging import current_offset, pager, reset

PAGE_SIZE = 50
CHART_DAYS = 14
FILTERS = {"All": None, "Successful": True, "Failed": False}

client = api_client()
st.title("All logins")

name_column, result_column = st.columns([2, 2])
username = name_column.text_input(
    "Username attempted", key="admin_logins_user", on_change=reset, args=("admin_logins",)
)
with result_column:
    choice = st.segmented_control(
        "Show",
        list(FILTERS),
        default="All",
        key="admin_logins_filter",
        on_change=reset,
        args=("admin_logins",),
    )

name = username.strip() or None
success = FILTERS[choice or "All"]
events = recent_events(
    lambda **page: client.all_login_history(username=name, success=success, **page),
    days=CHART_DAYS,
)
st.subheader(f"Last {CHART_DAYS} days")
logins_chart(logins_per_day(events, CHART_DAYS))

history = client.all_login_history(
    limit=PAGE_SIZE,
    offset=current_offset("admin_logins", PAGE_SIZE),
    username=name,
    success=success,
)
if history["items"]:
    events_table(history["items"], show_username=True)
    pager("admin_logins", history["total"], PAGE_SIZE)
else:
    empty_state("No login attempts match", "Change the filters.", ":material/policy:")
