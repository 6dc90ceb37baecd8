"""Admin: the service's figures."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from frontend.auth.session import api_client

stats = api_client().stats()
st.title("Statistics")

users, active, images, logins, failed = st.columns(5)
users.metric("Users", stats["users"], border=True)
active.metric("Active users", stats["active_users"], border=True)
images.metric("Images", stats["images"], border=True)
logins.metric("Logins (24 h)", stats["logins_24h"], border=True)
failed.metric("Failed logins (24 h)", stats["failed_logins_24h"], border=True)

st.subheader("Jobs by status")
jobs = stats.get("jobs_by_status") or {}
if any(jobs.values()):
    st.bar_chart(
        pd.DataFrame({"Status": list(jobs), "Jobs": list(jobs.values())}),
        x="Status",
        y="Jobs",
        height=260,
    )
else:
    st.caption("No jobs yet.")
