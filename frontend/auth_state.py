"""Who is logged in, for one browser session: the token pair, the user, and what the browser's
refresh cookie should become.

A plain object (no Streamlit calls) kept in `st.session_state`, so code running outside a script
run — a download button's data callback on a worker thread — can still use the API client.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any

SESSION_EXPIRED = "Your session has expired. Please log in again."


@dataclass(frozen=True, slots=True)
class Tokens:
    access_token: str
    refresh_token: str
    refresh_expires_in: int

    @classmethod
    def from_pair(cls, pair: dict[str, Any]) -> Tokens:
        """From the API's TokenPair answer."""
        return cls(
            access_token=pair["access_token"],
            refresh_token=pair["refresh_token"],
            refresh_expires_in=int(pair["refresh_expires_in"]),
        )


class AuthState:
    """Tokens live here and nowhere else in the dashboard (never in the browser's JavaScript).

    `lock` serialises refreshes: two reruns that both meet a 401 rotate the refresh token once.
    `cookie_dirty` says the browser's refresh cookie no longer matches: it must be set to the
    current refresh token (remember me) or cleared (otherwise); `frontend/session_cookie.py`
    does that and resets the flag.
    """

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.tokens: Tokens | None = None
        self.remember = False
        self.user: dict[str, Any] | None = None
        self.notice: str | None = None
        self.cookie_dirty = False
        self.cookie_ticket: str | None = None
        self.resume_attempted = False

    @property
    def logged_in(self) -> bool:
        return self.tokens is not None

    @property
    def is_admin(self) -> bool:
        return bool(self.user and self.user.get("role") == "admin")

    def store(self, tokens: Tokens, *, remember: bool | None = None) -> None:
        """Keeps a new (or rotated) pair; the cookie must follow it."""
        self.tokens = tokens
        if remember is not None:
            self.remember = remember
        self.notice = None
        self.cookie_dirty = True

    def clear(self, notice: str | None = None) -> None:
        """Forgets the login; `notice` is what the login page will say about it."""
        self.tokens = None
        self.user = None
        self.remember = False
        self.notice = notice
        self.cookie_dirty = True

    def expire(self) -> None:
        self.clear(SESSION_EXPIRED)
