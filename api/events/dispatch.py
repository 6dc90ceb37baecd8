"""Runs an event's handlers, each at most once per event id (the `handled_events` record)."""

from __future__ import annotations

import logging
import uuid

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from api.core.db import Database, writes
from api.events.context import HandlerContext
from api.events.outbox import MAX_ERROR_CHARS
from api.events.registry import HandlerRegistry
from api.models import HandledEvent
from api.schemas.event import Event

log = logging.getLogger("pixelgate.events")


class HandlersFailed(Exception):
    """At least one handler raised; the ones that finished are recorded and will not rerun."""


def run_handlers(event: Event, registry: HandlerRegistry, context: HandlerContext) -> None:
    """Runs every handler of `event` that has not finished it yet; raises HandlersFailed
    (naming each failure) after trying them all, so one broken handler delays no other."""
    done = _handled_by(context.database, event.id)
    failures: list[str] = []
    for handler in registry.handlers_for(event.type):
        if handler.name in done:
            continue
        try:
            handler.function(event, context)
        except Exception as exc:
            log.warning(
                "event handler failed: %s on %s %s: %s",
                handler.name,
                event.type,
                event.id,
                type(exc).__name__,
                exc_info=True,
            )
            failures.append(f"{handler.name}: {type(exc).__name__}: {exc}")
            continue
        _record_handled(context.database, event.id, handler.name)
    if failures:
        raise HandlersFailed("; ".join(failures)[:MAX_ERROR_CHARS])


def failure_text(exc: BaseException) -> str:
    """A failure as `last_error` keeps it: the handlers' own summary, else type and message."""
    if isinstance(exc, HandlersFailed):
        return str(exc)
    return f"{type(exc).__name__}: {exc}"[:MAX_ERROR_CHARS]


def _handled_by(database: Database, event_id: uuid.UUID) -> set[str]:
    with database.session() as db:
        return set(
            db.scalars(select(HandledEvent.handler).where(HandledEvent.event_id == event_id))
        )


def _record_handled(database: Database, event_id: uuid.UUID, handler_name: str) -> None:
    try:
        with database.session() as db, writes(db):
            db.add(HandledEvent(event_id=event_id, handler=handler_name))
    except IntegrityError:
        # A duplicate delivery handled by another process just now: already recorded.
        pass
