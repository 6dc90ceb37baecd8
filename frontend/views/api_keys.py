"""API keys: create (the key is shown once, with a copy button), list, revoke."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from frontend.api_client import ApiError
from frontend.auth.session import api_client
from frontend.components.feedback import empty_state, show_error
from frontend.components.formatting import local_time

NEW_KEY = "api_key_just_created"

client = api_client()
st.title("API keys")
st.caption(
    "Keys let your scripts and servers call the image and job routes as you: send the key "
    "in the `X-API-Key` header. Treat a key like a password."
)

created = st.session_state.get(NEW_KEY)
if created:
    with st.container(border=True):
        st.success(f"Key **{created['name']}** created. Copy it now: it is shown only this once.")
        st.code(created["key"], language=None)  # the code block has a copy button
        if st.button("I have copied it", icon=":material/check:", key="api_key_done"):
            st.session_state.pop(NEW_KEY, None)
            st.rerun()

with (
    st.expander("Create a key", icon=":material/add:", expanded=not created),
    st.form("api_key_form", clear_on_submit=True),
):
    name = st.text_input(
        "Name", placeholder="e.g. backup script", max_chars=100, key="api_key_name"
    )
    days = st.number_input(
        "Expires after (days, 0 = never)",
        min_value=0,
        max_value=3650,
        value=90,
        step=1,
        key="api_key_days",
    )
    if st.form_submit_button("Create key", type="primary"):
        if not name.strip():
            st.error("Give the key a name so you can recognise it later.")
        else:
            try:
                st.session_state[NEW_KEY] = client.create_api_key(name.strip(), int(days))
            except ApiError as error:
                show_error(error)
            else:
                st.rerun()

keys = client.api_keys()
if not keys:
    empty_state("No API keys yet", "Create one above when a script needs to reach your images.")
else:
    st.dataframe(
        pd.DataFrame(
            [
                {
                    "Name": key["name"],
                    "Key starts with": f"{key['prefix']}…",
                    "Created": local_time(key["created_at"]),
                    "Expires": local_time(key.get("expires_at")),
                    "Last used": local_time(key.get("last_used_at")),
                    "Status": "Revoked" if key["revoked"] else "Active",
                }
                for key in keys
            ]
        ),
        hide_index=True,
        width="stretch",
    )
    active = [key for key in keys if not key["revoked"]]
    if active:
        by_id = {key["id"]: key for key in active}
        choice = st.selectbox(
            "Revoke a key",
            list(by_id),
            format_func=lambda key_id: f"{by_id[key_id]['name']} ({by_id[key_id]['prefix']}…)",
            index=None,
            placeholder="Choose a key",
            key="api_key_revoke_choice",
        )
        if choice not in by_id:
            choice = None
        if st.button("Revoke", icon=":material/block:", disabled=choice is None):
            client.revoke_api_key(by_id[choice]["id"])
            st.toast(f"Key {by_id[choice]['name']} revoked.")
            st.rerun()
