"""Per-browser-session objects kept in `st.session_state`, and the cookie glue around them."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from typing import Any, TypeVar

import streamlit as st

from frontend.api_client import ApiClient, ApiError, ApiUnavailable, SessionExpired
from frontend.auth_state import AuthState
from frontend.config import REFRESH_COOKIE_NAME
from frontend.session_cookie import HANDOFFS, ROUTE_PATH, TicketState

AUTH_KEY = "auth"
CLIENT_KEY = "api_client"
IMAGE_CACHE_KEY = "image_cache"
IMAGE_CACHE_SIZE = 96
LOGIN_FLASH_KEY = "login_flash"  # a success message the login page shows once
LOGGED_IN_MARK = "had_login"
KEEP_AFTER_LOGOUT = {AUTH_KEY, CLIENT_KEY, LOGIN_FLASH_KEY}

T = TypeVar("T")


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


class ImageCache:
    """Image bytes this session already fetched. Images never change (a processing result is a
    new image), so entries stay valid; the size bound keeps memory in check."""

    def __init__(self, max_entries: int = IMAGE_CACHE_SIZE) -> None:
        self._max_entries = max_entries
        self._entries: OrderedDict[tuple[Any, ...], Any] = OrderedDict()

    def get(self, key: tuple[Any, ...], fetch: Callable[[], T]) -> T:
        if key in self._entries:
            self._entries.move_to_end(key)
            return self._entries[key]
        value = fetch()
        self._entries[key] = value
        while len(self._entries) > self._max_entries:
            self._entries.popitem(last=False)
        return value

    def forget(self, image_id: int) -> None:
        for key in [k for k in self._entries if k[0] == image_id]:
            del self._entries[key]


def image_cache() -> ImageCache:
    if IMAGE_CACHE_KEY not in st.session_state:
        st.session_state[IMAGE_CACHE_KEY] = ImageCache()
    return st.session_state[IMAGE_CACHE_KEY]


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


def _route_url(ticket: str) -> str:
    base_path = (st.get_option("server.baseUrlPath") or "").strip("/")
    prefix = f"/{base_path}" if base_path else ""
    return f"{prefix}{ROUTE_PATH}?ticket={ticket}"


def sync_cookie() -> None:
    """Makes the browser's refresh cookie follow the tokens (see frontend/session_cookie.py).

    Renders an invisible image pointing at the cookie route while a ticket is pending.
    """
    auth = auth_state()
    if auth.cookie_dirty:
        kept = auth.tokens if auth.remember else None  # None: clear the cookie
        auth.cookie_ticket = HANDOFFS.issue(
            kept.refresh_token if kept else None,
            kept.refresh_expires_in if kept else None,
            replaces=auth.cookie_ticket,
        )
        auth.cookie_dirty = False
    if auth.cookie_ticket is None:
        return
    state = HANDOFFS.state(auth.cookie_ticket)
    if state is TicketState.REDEEMED:
        auth.cookie_ticket = None
    elif state is TicketState.GONE:  # never fetched in time: issue a fresh one next run
        auth.cookie_ticket = None
        auth.cookie_dirty = True
    else:
        st.html(
            f'<img src="{_route_url(auth.cookie_ticket)}" alt="" width="1" height="1" '
            'style="position:absolute;opacity:0;pointer-events:none">'
        )
