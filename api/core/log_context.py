"""What the current unit of work is (a request, a Celery task, an event being handled), so that
every log line written during it carries the same fields.

One mutable `LogContext` per unit of work, held in a context variable: code running in a
worker thread of the request (sync routes and dependencies get a copy of the context) still
shares the object, so the user id it notes reaches the access-log line written at the end.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar, Token
from dataclasses import dataclass, fields


@dataclass(slots=True)
class LogContext:
    request_id: str | None = None
    user_id: int | None = None
    task_id: str | None = None
    job_id: int | None = None
    event_id: str | None = None

    def fields(self) -> dict[str, object]:
        """The fields that are known; never a secret (ids only)."""
        return {
            field.name: value
            for field in fields(self)
            if (value := getattr(self, field.name)) is not None
        }


_current: ContextVar[LogContext | None] = ContextVar("pixelgate_log_context", default=None)


def current_log_context() -> LogContext | None:
    return _current.get()


def bind_log_context(context: LogContext) -> Token[LogContext | None]:
    """Makes `context` the current one until `reset_log_context(token)`."""
    return _current.set(context)


def reset_log_context(token: Token[LogContext | None]) -> None:
    _current.reset(token)


@contextmanager
def log_context(**fields: object) -> Iterator[LogContext]:
    """A new context for one unit of work, e.g. `with log_context(task_id=...):`."""
    context = LogContext(**fields)  # type: ignore[arg-type]
    token = bind_log_context(context)
    try:
        yield context
    finally:
        reset_log_context(token)


def note_user(user_id: int) -> None:
    """The authenticated caller of the current request, for its log lines."""
    context = _current.get()
    if context is not None:
        context.user_id = user_id
