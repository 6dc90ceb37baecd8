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


class RouteFiguresOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    route: str = Field(description="The route template, or `unmatched`")
    method: str
    requests: int
    client_errors: int = Field(description="Answers 400–499")
    server_errors: int = Field(description="Answers 500–599")


class RequestTotalsOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    requests: int
    client_errors: int
    server_errors: int
    routes: list[RouteFiguresOut] = Field(description="The busiest routes, most requests first")


class SeriesPointOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    start: datetime = Field(description="Start of the bucket")
    counts: dict[str, int]


class OperationsOut(BaseModel):
    """The state of the service: request totals from the metrics of the API processes that
    share the answering host (cumulative since they started: rates are differences between
    two answers), the rest from the database over the last `window_minutes`."""

    model_config = ConfigDict(from_attributes=True)

    generated_at: datetime
    window_minutes: int
    bucket_seconds: int = Field(description="Width of each point of the series")
    requests: RequestTotalsOut
    api_processes: int = Field(description="API worker processes on the answering host")
    worker_processes: int = Field(description="Their processing pools' processes, summed")
    jobs_queued: int
    jobs_running: int
    jobs: list[SeriesPointOut] = Field(description="Jobs finished per bucket: done, failed")
    logins: list[SeriesPointOut] = Field(description="Login attempts per bucket: succeeded, failed")
    login_failures: dict[str, int] = Field(description="Failed logins in the window by reason")
    events: dict[str, int] = Field(description="Outbox rows by delivery state")
