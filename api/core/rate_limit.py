"""Rate limits on top of slowapi's Limiter (memory or Redis storage, moving window).

Services call `hit()` themselves rather than using slowapi's decorator, because a refused
login must still be written to the login history with the username it tried.
"""

from __future__ import annotations

import math
import time

from limits import parse
from slowapi import Limiter
from starlette.requests import Request

from api.core.metrics import RATE_LIMITED

KEY_NAMESPACE = "pixelgate"


def _unused_key(_request: Request) -> str:  # slowapi wants one; keys are passed to hit()
    return ""


class RateLimiter:
    def __init__(self, storage_uri: str, enabled: bool) -> None:
        self.enabled = enabled
        # Counters in this process's memory need no probe; any other store is shared state.
        self.shared_storage = enabled and not storage_uri.startswith("memory://")
        self._limiter = Limiter(
            key_func=_unused_key,
            storage_uri=storage_uri,
            strategy="moving-window",
            enabled=enabled,
        )

    def hit(self, scope: str, limit: str, key: str) -> int | None:
        """Counts one request; returns seconds to wait when over the limit, else None."""
        if not self.enabled:
            return None
        item = parse(limit)
        strategy = self._limiter.limiter
        # The namespace keeps our counters apart on a Redis shared with other applications.
        if strategy.hit(item, KEY_NAMESPACE, scope, key):
            return None
        RATE_LIMITED.labels(scope).inc()
        reset_at = strategy.get_window_stats(item, KEY_NAMESPACE, scope, key).reset_time
        return max(1, math.ceil(reset_at - time.time()))

    def is_reachable(self) -> bool:
        """Whether the counters' store answers (for /health)."""
        return bool(self._limiter.limiter.storage.check())

    def reset(self) -> None:
        self._limiter.reset()
