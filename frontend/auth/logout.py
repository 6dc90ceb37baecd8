"""Logging out, for every "Log out" button: of this device, or of every device."""

from __future__ import annotations

from typing import NoReturn

import streamlit as st

from frontend.auth.session import api_client
from frontend.navigation import switch_to
from frontend.sitemap import LOGIN


def log_out() -> NoReturn:
    """Ends this device's session at the API and the login here (even when the API cannot be
    told), then opens the login page at the dashboard's root address."""
    if not api_client().logout():
        st.toast("Logged out here; the server could not be told right now.")
    switch_to(LOGIN)


def log_out_everywhere() -> NoReturn:
    """Ends every session of the account (the API must agree: its error is raised), then opens
    the login page, which says what happened."""
    api_client().logout_everywhere()
    switch_to(LOGIN)
