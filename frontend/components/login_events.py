"""The login-events table, shared by a user's history and the admin's view of everyone's."""

from __future__ import annotations

from typing import Any

import pandas as pd
import streamlit as st

from frontend.components.formatting import device, local_time

FAILURE_REASONS = {
    "bad_credentials": "Wrong username or password",
    "locked": "Locked out after failed attempts",
    "inactive": "Account deactivated",
    "rate_limited": "Too many attempts",
    "mfa_failed": "Wrong or expired two-factor code",
}


def events_table(events: list[dict[str, Any]], *, show_username: bool = False) -> None:
    rows = [
        {
            "When": local_time(event["created_at"]),
            **({"Username": event["username_attempted"]} if show_username else {}),
            "Result": "✅ Success" if event["success"] else "❌ Failed",
            "Reason": FAILURE_REASONS.get(event.get("failure_reason") or "", ""),
            "Device": device(event.get("user_agent")),
            "IP address": event.get("ip_address") or "",
        }
        for event in events
    ]
    st.dataframe(
        pd.DataFrame(rows),
        hide_index=True,
        width="stretch",
        column_config={"When": st.column_config.DatetimeColumn(format="YYYY-MM-DD HH:mm:ss")},
    )
