"""Reset password, from the mailed link `/reset-password?token=…`: the new password twice,
the policy shown; then log in with it (the reset logs out every session)."""

from __future__ import annotations

import streamlit as st

from frontend.api_client import ApiError
from frontend.auth.links import forget_link_token, link_token
from frontend.auth.session import api_client, auth_state
from frontend.components.feedback import (
    clear_field_errors,
    field_error,
    remember_field_errors,
    show_error,
)
from frontend.components.password_rules import password_rules
from frontend.navigation import switch_to
from frontend.sitemap import FORGOT_PASSWORD, LOGIN

FORM = "reset_password"
OUTCOME_KEY = "reset_password_outcome"  # (ok, message) once the link was used or refused
SIGNED_OUT = "Your new password is set and every session was logged out: log in with it."


def _use_link(token: str, password: str) -> None:
    try:
        api_client().confirm_password_reset(token, password)
    except ApiError as error:
        if error.field_errors:  # the policy: the link stays usable
            remember_field_errors(FORM, error)
            st.rerun()
        clear_field_errors(FORM)
        if error.status != 400:
            show_error(error)
            return
        forget_link_token()
        st.session_state[OUTCOME_KEY] = (False, error.message)
        st.rerun()
    clear_field_errors(FORM)
    forget_link_token()
    auth = auth_state()
    if auth.logged_in:  # this session was revoked with the others
        auth.clear(SIGNED_OUT)
        switch_to(LOGIN)
    st.session_state[OUTCOME_KEY] = (True, "Your new password is set.")
    st.rerun()


_, middle, _ = st.columns([1, 2, 1])
with middle:
    st.title("Choose a new password")
    outcome = st.session_state.pop(OUTCOME_KEY, None)
    token = link_token()
    if outcome is not None:
        ok, message = outcome
        if ok:
            st.success(message, icon=":material/check_circle:")
            st.page_link(LOGIN, label="Log in with your new password", icon=":material/login:")
        else:
            st.error(
                f"{message}. Links work once and for a short while, and a newer link "
                "replaces the older ones.",
                icon=":material/link_off:",
            )
            st.page_link(FORGOT_PASSWORD, label="Get a new link", icon=":material/lock_reset:")
        st.stop()
    if token is None:
        st.warning(
            "Open this page with the link from your password reset mail.",
            icon=":material/link:",
        )
        st.page_link(FORGOT_PASSWORD, label="Get a reset link", icon=":material/lock_reset:")
        st.stop()

    password_rules()
    with st.form("reset_form"):
        password = st.text_input(
            "New password", type="password", key="reset_new", autocomplete="new-password"
        )
        field_error(FORM, "new_password")
        repeated = st.text_input(
            "Repeat new password", type="password", key="reset_repeat", autocomplete="new-password"
        )
        submitted = st.form_submit_button("Set new password", type="primary", width="stretch")
    if submitted:
        if not password:
            st.error("Enter the new password twice.")
        elif password != repeated:
            st.error("The two passwords do not match.")
        else:
            _use_link(token, password)
