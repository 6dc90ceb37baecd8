"""Which handlers run for which event type (filled in by `build_handler_registry`)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from api.events.context import HandlerContext
from api.schemas.event import Event, EventType

Handler = Callable[[Event, HandlerContext], None]


@dataclass(frozen=True, slots=True)
class RegisteredHandler:
    name: str  # the idempotency key in `handled_events`
    function: Handler


class HandlerRegistry:
    def __init__(self) -> None:
        self._for_every_type: list[RegisteredHandler] = []
        self._by_type: dict[str, list[RegisteredHandler]] = {}
        self._names: set[str] = set()

    def register(self, handler: Handler, *event_types: EventType) -> None:
        """Runs `handler` for each of `event_types` (for every type when none is given)."""
        registered = RegisteredHandler(_handler_name(handler), handler)
        if registered.name in self._names:
            raise ValueError(f"handler {registered.name} is registered twice")
        self._names.add(registered.name)
        if not event_types:
            self._for_every_type.append(registered)
        for event_type in event_types:
            self._by_type.setdefault(EventType(event_type).value, []).append(registered)

    def handlers_for(self, event_type: str) -> tuple[RegisteredHandler, ...]:
        return (*self._for_every_type, *self._by_type.get(event_type, ()))


def _handler_name(handler: Handler) -> str:
    return f"{handler.__module__}.{handler.__qualname__}"
