from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from api.models import Role
from api.schemas.auth import UserOut


class AdminUserOut(UserOut):
    """UserOut plus when the account was soft-deleted (null while it exists)."""

    deleted_at: datetime | None


class UserUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    role: Role | None = None
    is_active: bool | None = Field(
        None, description="false revokes every session and API key of the user at once"
    )


class StatsOut(BaseModel):
    users: int = Field(description="Accounts that are not deleted")
    active_users: int = Field(description="Accounts that are active and not deleted")
    deleted_users: int
    images: int
    jobs_by_status: dict[str, int] = Field(description="Every job status with its count")
    logins_24h: int = Field(description="Successful logins in the last 24 hours")
    failed_logins_24h: int = Field(description="Failed login attempts in the last 24 hours")


class AuditEntryOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    actor_id: int | None
    action: str
    target_type: str
    target_id: int | None
    ip_address: str | None
    details: dict[str, Any] | None
    created_at: datetime
