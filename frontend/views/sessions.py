"""Active sessions: where the account is logged in, with revoke and "log out everywhere"."""

from __future__ import annotations

import streamlit as st

from frontend.auth.logout import log_out, log_out_everywhere
from frontend.auth.session import api_client
from frontend.components.formatting import ago, device, when

client = api_client()
st.title("Sessions")
st.caption("Every device where you are logged in. Revoke any you don't recognise.")

sessions = client.sessions()
for session in sessions:
    with st.container(border=True):
        info, action = st.columns([4, 1], vertical_alignment="center")
        with info:
            marker = " · :green-badge[This device]" if session["current"] else ""
            st.markdown(f"**{device(session.get('user_agent'))}**{marker}")
            st.caption(
                f"IP {session.get('ip_address') or 'unknown'} · last used "
                f"{ago(session['last_used_at'])} · signed in {when(session['created_at'])} · "
                f"expires {when(session['expires_at'])}"
            )
        with action:
            if session["current"]:
                if st.button("Log out", key=f"revoke_{session['id']}", icon=":material/logout:"):
                    log_out()
            elif st.button("Revoke", key=f"revoke_{session['id']}", icon=":material/block:"):
                client.revoke_session(session["id"])
                st.toast("Session revoked.")
                st.rerun()

st.divider()
st.markdown("**Log out everywhere** ends every session, this one included.")
confirm = st.checkbox("Yes, log me out on every device", key="logout_all_confirm")
if st.button(
    "Log out everywhere", type="primary", disabled=not confirm, icon=":material/devices_off:"
):
    log_out_everywhere()
