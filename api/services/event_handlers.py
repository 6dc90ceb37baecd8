"""The handlers of domain events, and `build_handler_registry`, the one place they are listed.

See `api/events/__init__.py` for how to add one. Entry points (`create_app`, `api.consumer`)
call `build_handler_registry()`, so both delivery modes run exactly these handlers.
"""

from __future__ import annotations

import logging

from api.events.context import HandlerContext
from api.events.registry import HandlerRegistry
from api.schemas.event import Event, EventType
from api.services.images import remove_objects_of_deleted_images
from api.services.mfa_notices import mail_mfa_notice
from api.services.recovery_mail import (
    mail_password_changed_notice,
    mail_password_reset_link,
    mail_verification_link,
)

log = logging.getLogger("pixelgate.events")


def log_event(event: Event, context: HandlerContext) -> None:
    """Every event in the log: `data` holds no secret, so it is logged whole."""
    log.info("event %s %s %s", event.type, event.id, event.data)


def remove_deleted_account_files(event: Event, context: HandlerContext) -> None:
    """Finishes an account deletion: its images' rows went with it, their files go now."""
    keys = event.data.get("storage_keys", [])
    with context.database.session() as db:
        removed = remove_objects_of_deleted_images(db, context.storage, keys)
    log.info("removed %s file(s) of deleted user %s", removed, event.data["user_id"])


def build_handler_registry() -> HandlerRegistry:
    registry = HandlerRegistry()
    registry.register(log_event)  # every type
    registry.register(mail_password_reset_link, EventType.USER_PASSWORD_RESET_REQUESTED)
    registry.register(
        mail_verification_link, EventType.USER_CREATED, EventType.USER_EMAIL_VERIFICATION_REQUESTED
    )
    registry.register(mail_password_changed_notice, EventType.USER_PASSWORD_CHANGED)
    registry.register(remove_deleted_account_files, EventType.USER_DELETED)
    registry.register(
        mail_mfa_notice,
        EventType.USER_MFA_ENABLED,
        EventType.USER_MFA_DISABLED,
        EventType.USER_MFA_RECOVERY_CODES_REGENERATED,
    )
    return registry
