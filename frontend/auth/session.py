"""The login of one browser session, kept in `st.session_state`: its `AuthState` and the one
`ApiClient` bound to it, plus what must go when the login ends."""

from __future__ import annotations

import streamlit as st

from frontend.api_client import ApiClient
from frontend.auth.state import AuthState

AUTH_KEY = "auth"
CLIENT_KEY = "api_client"
LOGIN_FLASH_KEY = "login_flash"  # a success message the login page shows once
LOGGED_IN_MARK = "had_login"
KEEP_AFTER_LOGOUT = {AUTH_KEY, CLIENT_KEY, LOGIN_FLASH_KEY}


def auth_state() -> AuthState:
    if AUTH_KEY not in st.session_state:
        st.session_state[AUTH_KEY] = AuthState()
    return st.session_state[AUTH_KEY]


def forwarded_for(received: str | None, peer: str | None) -> str | None:
    """The X-Forwarded-For to send on: the chain this server received plus the peer it saw.

    The dashboard's server is one more proxy hop between the browser and the API. It trusts
    nothing itself: the API walks the chain from the right past the proxies it trusts
    (FORWARDED_ALLOW_IPS), so a browser forging the header gains nothing.
    """
    hops = [hop.strip() for hop in (received or "").split(",") if hop.strip()]
    if peer:
        hops.append(peer)
    return ", ".join(hops) or None


def _browser_headers() -> dict[str, str]:
    """The browser's user agent and address, so login history and sessions name the device."""
    headers: dict[str, str] = {}
    try:
        user_agent = st.context.headers.get("User-Agent")
        received = st.context.headers.get("X-Forwarded-For")
        ip_address = st.context.ip_address
    except Exception:  # no browser behind this session (e.g. AppTest)
        return headers
    # Only real strings: without a browser (AppTest) these are stand-in objects.
    if isinstance(user_agent, str) and user_agent:
        headers["User-Agent"] = user_agent
    chain = forwarded_for(
        received if isinstance(received, str) else None,
        ip_address if isinstance(ip_address, str) else None,
    )
    if chain:
        headers["X-Forwarded-For"] = chain
    return headers


def api_client() -> ApiClient:
    if CLIENT_KEY not in st.session_state:
        st.session_state[CLIENT_KEY] = ApiClient(auth_state(), forwarded_headers=_browser_headers())
    return st.session_state[CLIENT_KEY]


def forget_user_data_after_logout() -> None:
    """Once a login ends (logout, expiry, revocation), nothing of that user stays in this
    browser session: cached images, a just-created API key, selections, form values."""
    if auth_state().logged_in:
        st.session_state[LOGGED_IN_MARK] = True
        return
    if st.session_state.pop(LOGGED_IN_MARK, False):
        for key in list(st.session_state.keys()):
            if key not in KEEP_AFTER_LOGOUT:
                del st.session_state[key]
