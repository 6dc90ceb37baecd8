"""The reminder for an account whose email address is not verified, with "resend"."""

from __future__ import annotations

import streamlit as st

from frontend.api_client import ApiError
from frontend.auth.session import api_client, auth_state
from frontend.components.feedback import show_error

BANNER_START = "Your email address"


def resend_button() -> None:
    if st.button("Mail me a new link", icon=":material/forward_to_inbox:", key="verify_resend"):
        client = api_client()
        try:
            st.success(client.request_email_verification(), icon=":material/forward_to_inbox:")
        except ApiError as error:
            if error.status == 409:  # verified meanwhile (another tab, another device)
                client.load_user()
                st.rerun()
            show_error(error)


def verification_banner() -> None:
    """Shown on every page while the logged-in account's address is unverified."""
    user = auth_state().user or {}
    if not user or user.get("is_verified", True):
        return
    with st.container(border=True):
        st.warning(
            f"{BANNER_START} **{user['email']}** is not verified yet: open the link we "
            "mailed you. It lets us reach you to reset a forgotten password.",
            icon=":material/mark_email_unread:",
        )
        resend_button()
