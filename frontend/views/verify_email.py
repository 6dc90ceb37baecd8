"""Verify email, from the mailed link `/verify-email?token=…`. A button confirms, so that a
mail scanner opening the link cannot use it up."""

from __future__ import annotations

import streamlit as st

from frontend.api_client import ApiError
from frontend.auth.links import forget_link_token, link_token
from frontend.auth.session import api_client, auth_state
from frontend.components.feedback import show_error
from frontend.components.verification import resend_button
from frontend.sitemap import DASHBOARD, LOGIN

OUTCOME_KEY = "verify_email_outcome"  # (ok, message) once the link was used or refused

auth = auth_state()
_, middle, _ = st.columns([1, 2, 1])
with middle:
    st.title("Confirm your email address")
    outcome = st.session_state.pop(OUTCOME_KEY, None)
    token = link_token()
    if outcome is not None:
        ok, message = outcome
        if ok:
            st.success(message, icon=":material/mark_email_read:")
            if auth.logged_in:
                st.page_link(DASHBOARD, label="Go to the dashboard", icon=":material/dashboard:")
            else:
                st.page_link(LOGIN, label="Log in", icon=":material/login:")
        else:
            st.error(f"{message}.", icon=":material/link_off:")
            if auth.logged_in and auth.user and not auth.user.get("is_verified"):
                resend_button()
            elif not auth.logged_in:
                st.caption("Log in to have a new link mailed to you.")
        st.stop()
    if token is None:
        st.warning(
            "Open this page with the link from your verification mail.", icon=":material/link:"
        )
        st.stop()

    st.write("One click and your address is confirmed.")
    if st.button("Confirm my email address", type="primary", key="verify_confirm"):
        try:
            user = api_client().confirm_email_verification(token)
        except ApiError as error:
            if error.status != 400:
                show_error(error)
                st.stop()
            forget_link_token()
            st.session_state[OUTCOME_KEY] = (False, error.message)
        else:
            forget_link_token()
            if auth.logged_in:
                api_client().load_user()
            st.session_state[OUTCOME_KEY] = (True, f"{user['email']} is confirmed. Thank you!")
        st.rerun()
