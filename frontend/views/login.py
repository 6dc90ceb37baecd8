"""Log in with username or email; lockout and rate limits say when to try again."""

from __future__ import annotations

import streamlit as st

from frontend.api_client import ApiError
from frontend.components.feedback import show_error
from frontend.navigation import SIGNUP
from frontend.session import LOGIN_FLASH_KEY, api_client, auth_state

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
        username = st.text_input("Username or email", key="login_username", autocomplete="username")
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
        if not username.strip() or not password:
            st.error("Enter your username (or email) and your password.")
        else:
            try:
                api_client().login(username.strip(), password, remember_me=remember)
            except ApiError as error:
                if error.retry_after and "try again" not in error.message.lower():
                    error.message += f" Try again in {error.retry_after} seconds."
                show_error(error)
            else:
                st.rerun()

    st.page_link(SIGNUP, label="No account yet? Sign up", icon=":material/person_add:")
