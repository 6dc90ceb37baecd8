"""Admin: the service at work — request and error rates, jobs and queue depth, login failures.

Everything comes from GET /admin/operations (never from Prometheus). The figures refresh every
`REFRESH_S` seconds while the page is open; request rates are measured between refreshes.
"""

from __future__ import annotations

import pandas as pd
import streamlit as st

from frontend.api_client import ApiError, SessionExpired
from frontend.auth.session import api_client
from frontend.components.feedback import show_error
from frontend.components.formatting import when
from frontend.components.traffic import (
    ERROR_PERCENT,
    REQUESTS_PER_S,
    Sample,
    rates,
    remember,
    series_frame,
)

REFRESH_S = 10
WINDOWS = {"1 hour": 60, "6 hours": 360, "24 hours": 1440}
SAMPLES_KEY = "operations_samples"
GREEN, RED = "#2e9e5b", "#d64545"

client = api_client()
st.title("Operations")
choice = st.segmented_control("Period", list(WINDOWS), default="1 hour", key="ops_window")
window_minutes = WINDOWS[choice or "1 hour"]


def _request_figures(samples: list[Sample]) -> None:
    frame = rates(samples)
    rate, errors, routes_column = st.columns(3)
    if frame.empty:
        rate.metric("Requests/s", "—", help="Measured from the next refresh on", border=True)
        errors.metric("Server errors", "—", border=True)
    else:
        last = frame.iloc[-1]
        rate.metric("Requests/s", f"{last[REQUESTS_PER_S]:g}", border=True)
        errors.metric("Server errors", f"{last[ERROR_PERCENT]:g} %", border=True)
    routes_column.metric("Requests since start", f"{samples[-1].requests:,}", border=True)
    if len(frame) >= 2:
        st.line_chart(frame, x="Time", y=[REQUESTS_PER_S], height=200)
        st.line_chart(frame, x="Time", y=[ERROR_PERCENT], color=[RED], height=160)
    else:
        st.caption(f"The request chart fills in while this page stays open ({REFRESH_S} s).")


@st.fragment(run_every=REFRESH_S)
def live_figures() -> None:
    try:
        overview = client.operations(window_minutes)
    except SessionExpired:
        st.rerun()
    except ApiError as error:
        show_error(error)
        return
    samples = remember(st.session_state.get(SAMPLES_KEY, []), overview)
    st.session_state[SAMPLES_KEY] = samples
    st.caption(
        f"As of {when(overview['generated_at'])} · {overview['api_processes']} API processes, "
        f"{overview['worker_processes']} processing workers on the host that answered"
    )

    st.subheader("Requests")
    _request_figures(samples)

    st.subheader("Jobs")
    queued, running, finished = st.columns(3)
    queued.metric("Queue depth", overview["jobs_queued"], border=True)
    running.metric("Running", overview["jobs_running"], border=True)
    jobs = series_frame(overview["jobs"], {"done": "Done", "failed": "Failed"})
    finished.metric(f"Finished ({choice})", int(jobs[["Done", "Failed"]].sum().sum()), border=True)
    st.bar_chart(jobs, x="Time", y=["Done", "Failed"], color=[GREEN, RED], height=220)

    st.subheader("Logins")
    logins = series_frame(overview["logins"], {"succeeded": "Succeeded", "failed": "Failed"})
    failed, chart = st.columns([1, 3])
    failed.metric(f"Failed logins ({choice})", int(logins["Failed"].sum()), border=True)
    reasons = overview["login_failures"]
    if reasons:
        failed.dataframe(
            pd.DataFrame({"Reason": list(reasons), "Attempts": list(reasons.values())}),
            hide_index=True,
        )
    with chart:
        st.bar_chart(logins, x="Time", y=["Succeeded", "Failed"], color=[GREEN, RED], height=220)

    st.subheader("Events and routes")
    events, routes = st.columns([1, 2])
    events.dataframe(
        pd.DataFrame({"State": list(overview["events"]), "Events": overview["events"].values()}),
        hide_index=True,
    )
    routes.dataframe(
        pd.DataFrame(overview["requests"]["routes"]).rename(
            columns={
                "route": "Route",
                "method": "Method",
                "requests": "Requests",
                "client_errors": "4xx",
                "server_errors": "5xx",
            }
        ),
        hide_index=True,
    )


live_figures()
