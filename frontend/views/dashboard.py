"""Dashboard: counts, the latest images, and logins per day."""

from __future__ import annotations

import streamlit as st

from frontend.auth.session import api_client, auth_state
from frontend.components.charts import FAILURE, SUCCESS, logins_chart, logins_per_day, recent_events
from frontend.components.feedback import empty_state
from frontend.components.images import image_tile
from frontend.sitemap import IMAGES, JOBS

JOB_STATUSES = ("queued", "running", "done", "failed")
RECENT_IMAGES = 6
CHART_DAYS = 14

client = api_client()
user = auth_state().user or {}

st.title(f"Hello, {user.get('name') or user.get('username', '')}")
st.caption("Your library, your processing jobs and your account activity at a glance.")

images = client.images(limit=RECENT_IMAGES)
jobs_by_status = {status: client.jobs(limit=1, status=status)["total"] for status in JOB_STATUSES}

images_metric, done_metric, active_metric, failed_metric = st.columns(4)
images_metric.metric("Images", images["total"], border=True)
done_metric.metric("Jobs done", jobs_by_status["done"], border=True)
active_metric.metric(
    "Jobs in progress", jobs_by_status["queued"] + jobs_by_status["running"], border=True
)
failed_metric.metric("Jobs failed", jobs_by_status["failed"], border=True)

st.subheader("Recent images")
if images["items"]:
    for column, image in zip(st.columns(RECENT_IMAGES), images["items"], strict=False):
        with column:
            image_tile(image)
    st.page_link(IMAGES, label="All images", icon=":material/photo_library:")
else:
    empty_state(
        "No images yet",
        "Upload a few on the Images page, then run a pipeline on them.",
        ":material/add_photo_alternate:",
    )
    st.page_link(IMAGES, label="Upload images", icon=":material/upload:")

st.subheader(f"Logins, last {CHART_DAYS} days")
events = recent_events(client.login_history, days=CHART_DAYS)
counts = logins_per_day(events, CHART_DAYS)
chart, totals = st.columns([3, 1])
with chart:
    logins_chart(counts)
with totals:
    st.metric("Successful logins", int(counts[SUCCESS].sum()), border=True)
    st.metric("Failed attempts", int(counts[FAILURE].sum()), border=True)
st.page_link(JOBS, label="See your jobs", icon=":material/pending_actions:")
