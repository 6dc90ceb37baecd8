"""Logging in and out from a page: the login form and the one way to log out."""

from __future__ import annotations

import streamlit as st

from frontend.api_client import ApiError
from frontend.auth.session import LOGIN_FLASH_KEY, api_client, auth_state
from frontend.components.feedback import show_error
from frontend.navigation import SIGNUP


def _log_in(username: str, password: str, remember: bool) -> None:
    if not username or not password:
        st.error("Enter your username (or email) and your password.")
        return
    try:
        api_client().login(username, password, remember_me=remember)
    except ApiError as error:
        if error.retry_after and "try again" not in error.message.lower():
            error.message += f" Try again in {error.retry_after} seconds."
        show_error(error)
    else:
        st.rerun()


def login_form() -> None:
    """Username or email, password, remember me; lockouts and rate limits say when to retry."""
    auth = auth_state()
    _, middle, _ = st.columns([1, 2, 1])
    with middle:
        st.title("Log in")
        st.caption("Welcome back to Pixelgate — your private image library.")
        if auth.notice:
            st.warning(auth.notice, icon=":material/schedule:")
        if flash := st.session_state.pop(LOGIN_FLASH_KEY, None):
            st.success(flash, icon=":material/check_circle:")

        with st.form("login_form"):
            username = st.text_input(
                "Username or email", key="login_username", autocomplete="username"
            )
            password = st.text_input(
                "Password", type="password", key="login_password", autocomplete="current-password"
            )
            remember = st.checkbox(
                "Remember me on this device",
                key="login_remember",
                help="Stay logged in when the page is reloaded. Leave it off on shared computers.",
            )
            submitted = st.form_submit_button("Log in", type="primary", width="stretch")
        if submitted:
            _log_in(username.strip(), password, remember)

        st.page_link(SIGNUP, label="No account yet? Sign up", icon=":material/person_add:")


def log_out() -> None:
    """Ends this device's session at the API and the login here (even when the API cannot be
    told), then reruns: the navigation now offers the login page."""
    if not api_client().logout():
        st.toast("Logged out here; the server could not be told right now.")
    st.rerun()
