"""Log format of every Pixelgate process (API, Celery worker, event consumer).

`LOG_FORMAT=text` (default): `time level logger message`, for people. `LOG_FORMAT=json`: one
JSON object per line with `time`, `level`, `logger`, `process` (the pid), `message`, the
current unit of work's ids (`request_id`, `user_id`, `task_id`, `job_id`, `event_id`; see
`api/core/log_context.py`) and whatever a line adds (`route`, `status`, `duration_ms`, ...),
for log shippers. In JSON mode uvicorn's and Celery's own loggers get the same format, so
every line a process writes after start-up parses.
"""

from __future__ import annotations

import logging
from typing import Literal

from pythonjsonlogger.json import JsonFormatter

from api.core.log_context import current_log_context

LogFormat = Literal["text", "json"]

_TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s %(message)s"
_JSON_FIELDS = "%(asctime)s %(levelname)s %(name)s %(process)d %(message)s"
_JSON_RENAMES = {"asctime": "time", "levelname": "level", "name": "logger"}
# Loggers of the servers we run under, which write lines of their own.
HOST_LOGGERS = ("uvicorn", "uvicorn.error", "celery", "celery.task", "celery.worker")
_MARK = "_pixelgate"


class ContextFilter(logging.Filter):
    """Adds the current unit of work's ids to every record passing the handler."""

    def filter(self, record: logging.LogRecord) -> bool:
        context = current_log_context()
        if context is not None:
            for name, value in context.fields().items():
                if not hasattr(record, name):
                    setattr(record, name, value)
        return True


def formatter(log_format: LogFormat) -> logging.Formatter:
    if log_format == "json":
        return JsonFormatter(_JSON_FIELDS, rename_fields=_JSON_RENAMES)
    return logging.Formatter(_TEXT_FORMAT)


def _handler(log_format: LogFormat) -> logging.Handler:
    handler = logging.StreamHandler()
    handler.setFormatter(formatter(log_format))
    handler.addFilter(ContextFilter())
    setattr(handler, _MARK, True)
    return handler


def configure_logging(level: str, log_format: LogFormat = "text") -> None:
    """Idempotent: the `pixelgate` loggers get one handler in the chosen format; in JSON mode
    the hosts' handlers are switched to it too."""
    logger = logging.getLogger("pixelgate")
    logger.setLevel(level.upper())
    for handler in [h for h in logger.handlers if getattr(h, _MARK, False)]:
        logger.removeHandler(handler)
    logger.addHandler(_handler(log_format))
    logger.propagate = True
    for name in HOST_LOGGERS:
        adopt_handlers(logging.getLogger(name), log_format)


def adopt_handlers(logger: logging.Logger, log_format: LogFormat) -> None:
    """Gives the handlers a host server set up on `logger` the current unit of work's ids,
    and in JSON mode our format."""
    for handler in logger.handlers:
        if log_format == "json":
            handler.setFormatter(formatter(log_format))
        if not any(isinstance(f, ContextFilter) for f in handler.filters):
            handler.addFilter(ContextFilter())
