"""Continuing a "remember me" login in a new browser session (a reload, a new tab) from the
refresh cookie that `frontend/auth/cookie.py` keeps."""

from __future__ import annotations

import streamlit as st

from frontend.api_client import ApiError, ApiUnavailable, SessionExpired
from frontend.auth.session import api_client, auth_state
from frontend.config import REFRESH_COOKIE_NAME


def _remembered_refresh_token() -> str | None:
    try:
        value = st.context.cookies.get(REFRESH_COOKIE_NAME)
    except Exception:  # no browser behind this session (e.g. AppTest)
        return None
    return value if isinstance(value, str) and value else None


def resume_remembered_login() -> None:
    """Once per browser session: continue a "remember me" login from the refresh cookie."""
    auth = auth_state()
    if auth.logged_in or auth.resume_attempted:
        return
    refresh_token = _remembered_refresh_token()
    if not refresh_token:
        auth.resume_attempted = True
        return
    try:
        api_client().resume(refresh_token)
    except SessionExpired:
        pass  # the login page says so; the stale cookie is cleared by sync_cookie()
    except ApiUnavailable as error:
        st.warning(f"Could not restore your session: {error.message}")
        return  # try again on the next run
    except ApiError as error:
        st.warning(f"Could not restore your session: {error.message}")
    auth.resume_attempted = True
