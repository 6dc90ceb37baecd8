"""Who is logged in, for one browser session: the token pair, the user, and what the browser's
refresh cookie should become.

A plain object (no Streamlit calls) kept in `st.session_state`, so code running outside a script
run — a download button's data callback on a worker thread — can still use the API client.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Callable
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


class TokenBox:
    """One login's token pair, with the lock that serialises its refreshes.

    Browser tabs that continue one "remember me" login from the same cookie share a box: when
    one tab rotates the refresh token, the others use the new pair instead of presenting the
    rotated one (which the API would treat as reuse and answer by revoking the whole session).
    """

    def __init__(self, tokens: Tokens | None = None) -> None:
        self.lock = threading.Lock()
        self.tokens = tokens


def _digest(refresh_token: str) -> str:
    return hashlib.sha256(refresh_token.encode()).hexdigest()


class RememberedLogins:
    """The token boxes of remembered logins in this dashboard process, found by the refresh
    token a browser's cookie holds.

    A box is found by its current refresh token — what the API would need to refresh anyway —
    or, once and for `grace_s` after a rotation, by the previous one: the browser may not have
    fetched the updated cookie yet when another of its tabs reloads. Short and single-use, so a
    stolen rotated token is no way in: a second presentation goes to the API, whose reuse
    detection revokes the session.
    """

    def __init__(self, grace_s: float = 10.0, clock: Callable[[], float] = time.monotonic):
        self._grace_s = grace_s
        self._clock = clock
        self._lock = threading.Lock()
        # digest of a refresh token -> (box, valid until, usable once)
        self._boxes: dict[str, tuple[TokenBox, float, bool]] = {}

    def rotated(self, box: TokenBox, previous: Tokens | None, current: Tokens) -> None:
        now = self._clock()
        with self._lock:
            self._purge(now)
            self._boxes[_digest(current.refresh_token)] = (
                box,
                now + current.refresh_expires_in,
                False,
            )
            if previous is not None and previous.refresh_token != current.refresh_token:
                self._boxes[_digest(previous.refresh_token)] = (box, now + self._grace_s, True)

    def find(self, refresh_token: str) -> TokenBox | None:
        key = _digest(refresh_token)
        with self._lock:
            self._purge(self._clock())
            entry = self._boxes.get(key)
            if entry is not None and entry[2]:
                del self._boxes[key]
        if entry is None or entry[0].tokens is None:
            return None
        return entry[0]

    def forget(self, box: TokenBox) -> None:
        with self._lock:
            for key in [key for key, (known, _, _) in self._boxes.items() if known is box]:
                del self._boxes[key]

    def _purge(self, now: float) -> None:
        for key in [key for key, (_, until, _) in self._boxes.items() if until <= now]:
            del self._boxes[key]


REMEMBERED = RememberedLogins()


class AuthState:
    """Who is logged in, for one browser session. Tokens live in its `box` and nowhere else in
    the dashboard (never in the browser's JavaScript).

    `lock` serialises refreshes: two reruns that both meet a 401 rotate the refresh token once.
    `cookie_dirty` says the browser's refresh cookie no longer matches: it must be set to the
    current refresh token (remember me) or cleared (otherwise); `frontend/auth/cookie.py` does
    that and resets the flag.
    """

    def __init__(self) -> None:
        self.box = TokenBox()
        self.remember = False
        self.user: dict[str, Any] | None = None
        self.notice: str | None = None
        self.cookie_dirty = False
        self.cookie_ticket: str | None = None
        self.resume_attempted = False

    @property
    def tokens(self) -> Tokens | None:
        return self.box.tokens

    @property
    def lock(self) -> threading.Lock:
        return self.box.lock

    @property
    def logged_in(self) -> bool:
        return self.tokens is not None

    @property
    def is_admin(self) -> bool:
        return bool(self.user and self.user.get("role") == "admin")

    def store(self, tokens: Tokens, *, remember: bool | None = None) -> None:
        """Keeps a new (or rotated) pair; the cookie must follow it."""
        previous = self.box.tokens
        self.box.tokens = tokens
        if remember is not None:
            self.remember = remember
        if self.remember:
            REMEMBERED.rotated(self.box, previous, tokens)
        self.notice = None
        self.cookie_dirty = True

    def join(self, box: TokenBox) -> None:
        """Continues a remembered login another tab of this browser holds (see TokenBox)."""
        self.box = box
        self.remember = True
        self.notice = None
        self.cookie_dirty = True  # the cookie may still hold the previous token

    def clear(self, notice: str | None = None) -> None:
        """Forgets the login — in every tab sharing it — and says why on the login page."""
        REMEMBERED.forget(self.box)
        self.box.tokens = None
        self.box = TokenBox()
        self.user = None
        self.remember = False
        self.notice = notice
        self.cookie_dirty = True

    def expire(self) -> None:
        self.clear(SESSION_EXPIRED)
