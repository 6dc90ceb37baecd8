"""The "remember me" cookie: the refresh token in an HttpOnly, SameSite=Strict cookie of the
dashboard's own origin, so a browser reload (a new Streamlit session) can continue the login.

A Streamlit script cannot set cookies — it only talks to the browser over the websocket — and
the token must stay out of JavaScript and out of URLs. So the script leaves the wanted cookie
value here under a one-time random ticket, and the page loads an invisible image from
`/_pixelgate/session?ticket=…`: a route of the dashboard's own server (`st.App`, see
`frontend/app.py`) that answers with the `Set-Cookie`. The ticket is single-use, expires after a
few minutes, and a newer ticket of the same browser session cancels the older one, so a late
request can never put back a rotated (already revoked) token. A new session reads the cookie
from `st.context.cookies`, which Streamlit takes from the websocket handshake.

Both sides live here: the route, served by `frontend/app.py`, and `sync_cookie()`, called at
the end of every script run. They share the process, hence the one `HANDOFFS` store.
"""

from __future__ import annotations

import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum

import streamlit as st
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from frontend.auth.session import auth_state
from frontend.config import REFRESH_COOKIE_NAME, cookie_secure

ROUTE_PATH = "/_pixelgate/session"
TICKET_TTL_S = 300.0
# A transparent 1×1 GIF: what the invisible <img> that carries the ticket receives.
PIXEL = bytes.fromhex(
    "47494638396101000100800000000000ffffff21f90401000000002c000000000100010000020144003b"
)


class TicketState(Enum):
    PENDING = "pending"
    REDEEMED = "redeemed"
    GONE = "gone"  # expired, cancelled or never issued


@dataclass(slots=True)
class CookieHandoff:
    """What the cookie should become: a refresh token (with lifetime), or None to clear it."""

    refresh_token: str | None
    max_age: int | None
    expires_at: float
    redeemed: bool = False


class HandoffStore:
    """One-time tickets from script runs to the cookie route; thread-safe, bounded by the TTL."""

    def __init__(self, ttl_s: float = TICKET_TTL_S, clock: Callable[[], float] = time.monotonic):
        self._ttl_s = ttl_s
        self._clock = clock
        self._lock = threading.Lock()
        self._handoffs: dict[str, CookieHandoff] = {}

    def issue(
        self, refresh_token: str | None, max_age: int | None, *, replaces: str | None = None
    ) -> str:
        ticket = secrets.token_urlsafe(32)
        now = self._clock()
        with self._lock:
            self._purge(now)
            if replaces is not None:
                self._handoffs.pop(replaces, None)
            self._handoffs[ticket] = CookieHandoff(refresh_token, max_age, now + self._ttl_s)
        return ticket

    def redeem(self, ticket: str) -> CookieHandoff | None:
        """The handoff of a pending ticket, once; None for anything else."""
        with self._lock:
            self._purge(self._clock())
            handoff = self._handoffs.get(ticket)
            if handoff is None or handoff.redeemed:
                return None
            handoff.redeemed = True
            return handoff

    def state(self, ticket: str) -> TicketState:
        with self._lock:
            self._purge(self._clock())
            handoff = self._handoffs.get(ticket)
        if handoff is None:
            return TicketState.GONE
        return TicketState.REDEEMED if handoff.redeemed else TicketState.PENDING

    def _purge(self, now: float) -> None:
        for ticket in [t for t, h in self._handoffs.items() if h.expires_at <= now]:
            del self._handoffs[ticket]


HANDOFFS = HandoffStore()


def apply_handoff(request: Request) -> Response:
    """GET /_pixelgate/session?ticket=…: sets or clears the refresh cookie, once per ticket."""
    no_store = {"Cache-Control": "no-store"}
    handoff = HANDOFFS.redeem(request.query_params.get("ticket", ""))
    if handoff is None:
        return Response(status_code=404, headers=no_store)
    response = Response(PIXEL, media_type="image/gif", headers=no_store)
    secure = cookie_secure() or request.url.scheme == "https"
    if handoff.refresh_token:
        response.set_cookie(
            REFRESH_COOKIE_NAME,
            handoff.refresh_token,
            max_age=handoff.max_age,
            path="/",
            httponly=True,
            secure=secure,
            samesite="strict",
        )
    else:
        response.delete_cookie(
            REFRESH_COOKIE_NAME, path="/", httponly=True, secure=secure, samesite="strict"
        )
    return response


def routes() -> list[BaseRoute]:
    return [Route(ROUTE_PATH, apply_handoff, methods=["GET"])]


def _route_url(ticket: str) -> str:
    base_path = (st.get_option("server.baseUrlPath") or "").strip("/")
    prefix = f"/{base_path}" if base_path else ""
    return f"{prefix}{ROUTE_PATH}?ticket={ticket}"


def sync_cookie() -> None:
    """Makes the browser's refresh cookie follow the tokens: renders an invisible image
    pointing at the cookie route while a ticket is pending."""
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
