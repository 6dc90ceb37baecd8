"""Admin: the domain events (the outbox) with their delivery state, filtered by type and state."""

from __future__ import annotations

import json

import pandas as pd
import streamlit as st

from frontend.auth.session import api_client
from frontend.components.feedback import empty_state
from frontend.components.formatting import local_time
from frontend.components.paging import current_offset, pager, reset

PAGE_SIZE = 50
# The contract's event types; events of other (internal) types show under "All types".
TYPES = [
    "user.created",
    "user.deleted",
    "user.role_changed",
    "user.deactivated",
    "user.reactivated",
    "user.password_changed",
    "user.email_verified",
    "user.mfa_enabled",
    "user.mfa_disabled",
    "image.uploaded",
    "image.deleted",
    "job.done",
    "job.failed",
]
STATES = ["pending", "published", "handled", "failed"]
STATE_LABELS = {
    "pending": "⏳ pending",
    "published": "📤 published",
    "handled": "✅ handled",
    "failed": "❌ failed",
}

client = api_client()
st.title("Events")
st.caption(
    "Every change other systems care about, in commit order: pending until published to the "
    "broker or handled here, failed only when a handler gave up after its retries."
)

type_column, state_column = st.columns([2, 3])
event_type = type_column.selectbox(
    "Type",
    ["All types", *TYPES],
    key="admin_events_type",
    on_change=reset,
    args=("admin_events",),
)
with state_column:
    state = st.segmented_control(
        "State",
        ["All", *STATES],
        default="All",
        key="admin_events_state",
        on_change=reset,
        args=("admin_events",),
    )

events = client.events(
    limit=PAGE_SIZE,
    offset=current_offset("admin_events", PAGE_SIZE),
    event_type=None if event_type == "All types" else event_type,
    state=None if state in (None, "All") else state,
)
if not events["items"]:
    empty_state("No events match", "Change the filters.", ":material/event_note:")
    st.stop()

st.dataframe(
    pd.DataFrame(
        [
            {
                "When": local_time(event["occurred_at"]),
                "Type": event["type"],
                "State": STATE_LABELS.get(event["state"], event["state"]),
                "Attempts": event["attempts"],
                "Last error": event.get("last_error") or "",
                "Data": json.dumps(event["data"], sort_keys=True),
                "ID": event["id"],
            }
            for event in events["items"]
        ]
    ),
    hide_index=True,
    width="stretch",
    column_config={"When": st.column_config.DatetimeColumn(format="YYYY-MM-DD HH:mm:ss")},
)
pager("admin_events", events["total"], PAGE_SIZE)
