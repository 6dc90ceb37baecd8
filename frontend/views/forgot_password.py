"""Forgot password: ask for a reset link by email. The answer is the same for every address."""

from __future__ import annotations

import streamlit as st

from frontend.api_client import ApiError
from frontend.auth.session import api_client
from frontend.components.feedback import show_error
from frontend.sitemap import LOGIN

_, middle, _ = st.columns([1, 2, 1])
with middle:
    st.title("Forgot your password?")
    st.caption(
        "Enter the email address of your account. We mail you a link to choose a new password; "
        "it works once, for a short while."
    )
    with st.form("forgot_form"):
        email = st.text_input("Email", key="forgot_email", autocomplete="email")
        submitted = st.form_submit_button("Send me a reset link", type="primary", width="stretch")
    if submitted:
        if "@" not in email:
            st.error("Enter the email address of your account.")
        else:
            try:
                answer = api_client().request_password_reset(email.strip())
            except ApiError as error:
                if error.field_errors:
                    st.error("That is not a valid email address.")
                else:
                    show_error(error)
            else:
                st.success(
                    f"{answer} Check your inbox (and the spam folder).",
                    icon=":material/forward_to_inbox:",
                )
    st.page_link(LOGIN, label="Back to log in", icon=":material/login:")
