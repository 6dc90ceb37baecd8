"""The handlers of domain events, and `build_handler_registry`, the one place they are listed.

See `api/events/__init__.py` for how to add one. Entry points (`create_app`, `api.consumer`)
call `build_handler_registry()`, so both delivery modes run exactly these handlers.
"""

from __future__ import annotations

import logging

from api.events.context import HandlerContext
from api.events.registry import HandlerRegistry
from api.schemas.event import Event, EventType
from api.services.mfa_notices import mail_mfa_notice

log = logging.getLogger("pixelgate.events")


def log_event(event: Event, context: HandlerContext) -> None:
    """Every event in the log: `data` holds no secret, so it is logged whole."""
    log.info("event %s %s %s", event.type, event.id, event.data)


def build_handler_registry() -> HandlerRegistry:
    registry = HandlerRegistry()
    registry.register(log_event)  # every type
    registry.register(
        mail_mfa_notice,
        EventType.USER_MFA_ENABLED,
        EventType.USER_MFA_DISABLED,
        EventType.USER_MFA_RECOVERY_CODES_REGENERATED,
    )
    return registry
