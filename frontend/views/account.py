"""Account: name, password, two-factor authentication, logout."""

from __future__ import annotations

import streamlit as st

from frontend.api_client import ApiError
from frontend.auth.logout import log_out
from frontend.auth.session import api_client, auth_state
from frontend.components.feedback import (
    clear_field_errors,
    field_error,
    remember_field_errors,
    show_error,
)
from frontend.components.formatting import when
from frontend.components.password_rules import password_rules
from frontend.components.two_factor import two_factor_section

PASSWORD_FORM = "change_password"

client = api_client()
user = auth_state().user or client.load_user()

st.title("Account")
profile, security = st.columns(2, gap="large")

with profile:
    st.subheader("Profile")
    verified = "verified" if user.get("is_verified") else "not verified yet"
    st.markdown(
        f"**{user['username']}** · {user['email']} ({verified})  \n"
        f"Role: {user['role']} · member since {when(user['created_at'])}"
    )
    with st.form("profile_form"):
        name = st.text_input("Name", value=user["name"], max_chars=100, key="account_name")
        if st.form_submit_button("Save name", type="primary"):
            try:
                client.update_name(name.strip())
            except ApiError as error:
                show_error(error)
            else:
                st.toast("Name saved.")
                st.rerun()

with security:
    st.subheader("Change password")
    st.caption("Changing it logs out every other device.")
    password_rules()
    with st.form("password_form", clear_on_submit=False):
        current = st.text_input("Current password", type="password", key="account_current")
        field_error(PASSWORD_FORM, "current_password")
        new = st.text_input("New password", type="password", key="account_new")
        field_error(PASSWORD_FORM, "new_password")
        confirm = st.text_input("Repeat new password", type="password", key="account_confirm")
        submitted = st.form_submit_button("Change password", type="primary")
    if submitted:
        clear_field_errors(PASSWORD_FORM)
        if new != confirm:
            st.error("The new passwords do not match.")
        else:
            try:
                client.change_password(current, new)
            except ApiError as error:
                if error.field_errors:
                    remember_field_errors(PASSWORD_FORM, error)
                    st.rerun()
                show_error(error)
            else:
                st.success("Password changed. Your other sessions were logged out.")

st.divider()
two_factor_section(client, user["username"])

st.divider()
if st.button("Log out", icon=":material/logout:", key="account_logout"):
    log_out()
