"""Domain events: the one registry of known types, and the envelope every handler receives."""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from api.models import EventState


class EventType(StrEnum):
    """Every event type there is; `record_event` refuses any other.

    Add a new type here (one line) and nowhere else: the outbox, the relay, the broker's
    routing keys, the consumer and the admin filter all take the list from this enum.
    The contract's types come first; internal ones (consumed by our own handlers, published
    like the others, never carrying a secret) after them.
    """

    # The contract's "Domain events".
    USER_CREATED = "user.created"
    USER_DELETED = "user.deleted"
    USER_ROLE_CHANGED = "user.role_changed"
    USER_DEACTIVATED = "user.deactivated"
    USER_REACTIVATED = "user.reactivated"
    USER_PASSWORD_CHANGED = "user.password_changed"
    USER_EMAIL_VERIFIED = "user.email_verified"
    USER_MFA_ENABLED = "user.mfa_enabled"
    USER_MFA_DISABLED = "user.mfa_disabled"
    IMAGE_UPLOADED = "image.uploaded"
    IMAGE_DELETED = "image.deleted"
    JOB_DONE = "job.done"
    JOB_FAILED = "job.failed"
    # Internal types: add yours below.
    # Someone asked for a reset link (`user_id` null: the address belongs to no account, which
    # the request must not reveal; `requested_by`: the admin who sent it, else null).
    USER_PASSWORD_RESET_REQUESTED = "user.password_reset_requested"
    USER_EMAIL_VERIFICATION_REQUESTED = "user.email_verification_requested"
    USER_MFA_RECOVERY_CODES_REGENERATED = "user.mfa_recovery_codes_regenerated"


# `data` must name what the event is about: the contract's keys, by the type's prefix.
REQUIRED_DATA_KEYS: dict[str, frozenset[str]] = {
    "user": frozenset({"user_id"}),
    "image": frozenset({"image_id", "user_id"}),
    "job": frozenset({"job_id", "image_id", "user_id"}),
}


class Event(BaseModel):
    """The envelope `{id, type, occurred_at, data}`: what the broker carries as JSON and what
    every handler receives. `data` holds ids and public fields, never a secret."""

    model_config = ConfigDict(frozen=True)

    id: uuid.UUID
    type: str
    occurred_at: datetime
    data: dict[str, Any]


class EventOut(BaseModel):
    """An outbox row as `GET /admin/events` shows it: the event and how its delivery went."""

    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID = Field(validation_alias="event_id", description="The event's id")
    type: str
    occurred_at: datetime
    data: dict[str, Any]
    state: EventState = Field(
        description="pending until published (broker) or handled (in-process); failed only "
        "when a handler gave up"
    )
    attempts: int = Field(description="Failed tries so far (publishing or handling)")
    last_error: str | None
    published_at: datetime | None
    handled_at: datetime | None
