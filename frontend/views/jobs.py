"""Jobs: the user's processing jobs with status, duration, error and result."""

from __future__ import annotations

import streamlit as st

from frontend.auth.session import api_client
from frontend.components.feedback import empty_state
from frontend.components.formatting import ago, duration
from frontend.components.images import open_link
from frontend.components.jobs import badge
from frontend.components.operations import describe_operations
from frontend.components.paging import current_offset, pager, reset

PAGE_SIZE = 20
FILTERS = {
    "All": None,
    "Queued": "queued",
    "Running": "running",
    "Done": "done",
    "Failed": "failed",
}

client = api_client()
title, refresh = st.columns([5, 1], vertical_alignment="bottom")
title.title("Jobs")
refresh.button("Refresh", icon=":material/refresh:", key="jobs_refresh")

choice = st.segmented_control(
    "Status", list(FILTERS), default="All", key="jobs_filter", on_change=reset, args=("jobs",)
)
jobs = client.jobs(
    limit=PAGE_SIZE, offset=current_offset("jobs", PAGE_SIZE), status=FILTERS[choice or "All"]
)
if not jobs["items"]:
    empty_state(
        "No jobs here",
        "Open an image on the Images page and run a pipeline; its jobs show up here.",
        ":material/pending_actions:",
    )
for job in jobs["items"]:
    with st.container(border=True):
        summary, source, result = st.columns([5, 1, 1], vertical_alignment="center")
        with summary:
            st.markdown(
                f"**Job #{job['id']}** {badge(job['status'])} · {duration(job.get('duration_ms'))}"
                f" · created {ago(job['created_at'])}"
            )
            st.caption(describe_operations(job.get("operations")))
            if job.get("error"):
                st.markdown(f":red[{job['error']}]")
        with source:
            if job.get("image_id"):
                open_link(job["image_id"], "Source", ":material/image:")
            else:
                st.caption("Source deleted")
        with result:
            if job.get("result_image_id"):
                open_link(job["result_image_id"], "Result", ":material/auto_awesome:")
pager("jobs", jobs["total"], PAGE_SIZE)
