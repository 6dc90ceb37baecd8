from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from api.schemas.common import NoControlCharacters

MAX_KEY_LIFETIME_DAYS = 3650


class ApiKeyCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: Annotated[
        str,
        StringConstraints(strip_whitespace=True, min_length=1, max_length=100),
        NoControlCharacters,
    ]
    expires_in_days: int | None = Field(
        None,
        ge=1,
        le=MAX_KEY_LIFETIME_DAYS,
        description="Lifetime in days; omitted or null: the key never expires",
    )


class ApiKeyOut(BaseModel):
    """A key as listed: never the key itself, nor its hash."""

    id: int
    name: str
    prefix: str = Field(description="The key's visible start, to recognise it")
    created_at: datetime
    expires_at: datetime | None
    last_used_at: datetime | None
    revoked: bool


class ApiKeyCreated(BaseModel):
    id: int
    name: str
    prefix: str
    key: str = Field(description="The full key, shown this one time only: send it as X-API-Key")
    created_at: datetime
    expires_at: datetime | None
