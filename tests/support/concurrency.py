"""Releasing calls together, for the races the rules must win (one winner of N)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any


def all_at_once(calls: list[Callable[[], Any]]) -> list[Any]:
    """Runs every call in its own thread, released together; returns results in call order."""
    barrier = threading.Barrier(len(calls))
    results: list[Any] = [None] * len(calls)

    def run(index: int) -> None:
        barrier.wait(timeout=30)
        results[index] = calls[index]()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(calls))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not any(thread.is_alive() for thread in threads)
    return results
