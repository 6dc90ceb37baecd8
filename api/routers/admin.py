"""Admin-only views: everyone's login history, site stats, the audit log."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated

from fastapi import APIRouter, Depends, Query

from api.dependencies import AdminUser, DbSession, MetricsSourceDep, admin_mfa_enforced
from api.schemas.admin import AuditEntryOut, OperationsOut, StatsOut
from api.schemas.auth import LoginEventOut
from api.schemas.common import (
    MAX_ID,
    NoControlCharacters,
    Page,
    Pagination,
    error_responses,
    to_page,
)
from api.services import admin as admin_service
from api.services import operations as operations_service
from api.services.login_history import login_history_page

router = APIRouter(prefix="/admin", tags=["admin"], dependencies=[Depends(admin_mfa_enforced)])


@router.get(
    "/login-history", response_model=Page[LoginEventOut], responses=error_responses(401, 403, 422)
)
def login_history(
    _admin: AdminUser,
    db: DbSession,
    page: Pagination,
    username: Annotated[
        str | None,
        Query(max_length=320, description="Name attempted, case-insensitive"),
        NoControlCharacters,
    ] = None,
    success: Annotated[bool | None, Query(description="Only successes or failures")] = None,
) -> Page[LoginEventOut]:
    """Every login attempt of every account (and of unknown names), newest first."""
    items, total = login_history_page(db, page, username=username, success=success)
    return to_page(LoginEventOut, items, total, page)


@router.get("/operations", response_model=OperationsOut, responses=error_responses(401, 403, 422))
def operations(
    _admin: AdminUser,
    db: DbSession,
    metrics: MetricsSourceDep,
    window_minutes: Annotated[
        int, Query(ge=12, le=24 * 60, description="How far back the series reach")
    ] = 60,
) -> OperationsOut:
    """Request and error totals, processes, queue depth, jobs finished and login attempts over
    time, outbox states: what the dashboard's Operations page shows."""
    overview = operations_service.overview(db, metrics, timedelta(minutes=window_minutes))
    return OperationsOut.model_validate(overview)


@router.get("/stats", response_model=StatsOut, responses=error_responses(401, 403))
def stats(_admin: AdminUser, db: DbSession) -> StatsOut:
    return StatsOut.model_validate(admin_service.stats(db), from_attributes=True)


@router.get(
    "/audit-log", response_model=Page[AuditEntryOut], responses=error_responses(401, 403, 422)
)
def audit_log(
    _admin: AdminUser,
    db: DbSession,
    page: Pagination,
    action: Annotated[
        str | None, Query(max_length=64, description="e.g. user.deleted"), NoControlCharacters
    ] = None,
    actor_id: Annotated[int | None, Query(ge=1, le=MAX_ID, description="Who acted")] = None,
    target_type: Annotated[
        str | None,
        Query(max_length=32, description="user, api_key or session"),
        NoControlCharacters,
    ] = None,
    target_id: Annotated[
        int | None, Query(ge=1, le=MAX_ID, description="What was acted on")
    ] = None,
) -> Page[AuditEntryOut]:
    """Role changes, (de)activations, deletions, API key creation and revocation, newest
    first, with who acted, from which address, and when."""
    items, total = admin_service.audit_log_page(
        db, page, action=action, actor_id=actor_id, target_type=target_type, target_id=target_id
    )
    return to_page(AuditEntryOut, items, total, page)
