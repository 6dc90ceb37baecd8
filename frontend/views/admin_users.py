"""Admin: every user, with search and filters; change role; deactivate or reactivate;
reset two-factor authentication."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from frontend.api_client import ApiError
from frontend.auth.session import api_client, auth_state
from frontend.components.feedback import empty_state, show_error
from frontend.components.formatting import local_time
from frontend.components.paging import current_offset, pager, reset

PAGE_SIZE = 25
ROLES = {"Any role": None, "Members": "member", "Admins": "admin"}
STATES = {"Active and inactive": None, "Active": True, "Inactive": False}

client = api_client()
st.title("Users")

search, role_filter, state_filter = st.columns([2, 1, 1])
query = search.text_input(
    "Search", placeholder="username, email or name", key="admin_q", on_change=reset, args=("users",)
)
role = role_filter.selectbox(
    "Role", list(ROLES), key="admin_role", on_change=reset, args=("users",)
)
state = state_filter.selectbox(
    "Status", list(STATES), key="admin_state", on_change=reset, args=("users",)
)

users = client.users(
    limit=PAGE_SIZE,
    offset=current_offset("users", PAGE_SIZE),
    q=query.strip() or None,
    role=ROLES[role],
    is_active=STATES[state],
)
if not users["items"]:
    empty_state("No users match", "Change the search or the filters.", ":material/person_search:")
    st.stop()

st.dataframe(
    pd.DataFrame(
        [
            {
                "ID": user["id"],
                "Username": user["username"],
                "Name": user["name"],
                "Email": user["email"],
                "Role": user["role"],
                "Active": user["is_active"],
                "Verified": user["is_verified"],
                "2FA": user["mfa_enabled"],
                "Joined": local_time(user["created_at"]),
                "Last login": local_time(user.get("last_login_at")),
            }
            for user in users["items"]
        ]
    ),
    hide_index=True,
    width="stretch",
)
pager("users", users["total"], PAGE_SIZE)

st.subheader("Manage a user")
by_id = {user["id"]: user for user in users["items"]}
chosen_id = st.selectbox(
    "User",
    list(by_id),
    format_func=lambda user_id: f"{by_id[user_id]['username']} — {by_id[user_id]['email']}",
    key="admin_chosen",
)
# This run's copy (a selectbox would keep a stale object), or the first if the filter changed.
chosen = by_id.get(chosen_id) or users["items"][0]
me = auth_state().user or {}
with st.container(border=True):
    role_column, active_column, reset_column, mfa_column = st.columns(4)
    with role_column:
        new_role = st.radio(
            "Role",
            ["member", "admin"],
            index=["member", "admin"].index(chosen["role"]),
            horizontal=True,
            key=f"admin_role_{chosen['id']}",
        )
        if st.button("Save role", disabled=new_role == chosen["role"], key="admin_save_role"):
            try:
                client.update_user(chosen["id"], role=new_role)
            except ApiError as error:
                show_error(error)
            else:
                st.toast(f"{chosen['username']} is now {new_role}.")
                st.rerun()
    with active_column:
        st.markdown(f"Status: **{'active' if chosen['is_active'] else 'deactivated'}**")
        label = "Deactivate" if chosen["is_active"] else "Reactivate"
        if chosen["id"] == me.get("id") and chosen["is_active"]:
            st.caption("Deactivating yourself ends your own session too.")
        if st.button(label, key="admin_toggle_active"):
            try:
                client.update_user(chosen["id"], is_active=not chosen["is_active"])
            except ApiError as error:
                show_error(error)
            else:
                st.toast(f"{chosen['username']} {label.lower()}d.")
                st.rerun()
    with reset_column:
        st.markdown("Password")
        if st.button(
            "Send reset link",
            icon=":material/lock_reset:",
            key="admin_send_reset",
            help="Mails the account's owner a link to choose a new password.",
        ):
            try:
                client.send_password_reset(chosen["id"])
            except ApiError as error:
                show_error(error)
            else:
                st.toast(f"A reset link is on its way to {chosen['email']}.")
    with mfa_column:
        st.markdown(f"Two-factor: **{'on' if chosen['mfa_enabled'] else 'off'}**")
        if chosen["mfa_enabled"]:
            confirmed = st.checkbox(
                "They lost their phone and their recovery codes",
                key=f"admin_mfa_confirm_{chosen['id']}",
                help="Resetting removes the authenticator and the recovery codes: the next "
                "login needs the password only, until they turn 2FA on again.",
            )
            if st.button("Reset 2FA", disabled=not confirmed, key="admin_reset_mfa"):
                try:
                    client.reset_user_mfa(chosen["id"])
                except ApiError as error:
                    show_error(error)
                else:
                    st.toast(f"Two-factor authentication of {chosen['username']} removed.")
                    st.rerun()
