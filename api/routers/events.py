"""`/admin/events`: the outbox of domain events with their delivery state (admins only)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query

from api.dependencies import AdminUser, DbSession, admin_mfa_enforced
from api.models import EventState
from api.schemas.common import Page, Pagination, error_responses, to_page
from api.schemas.event import EventOut, EventType
from api.services.events import events_page

router = APIRouter(prefix="/admin", tags=["admin"], dependencies=[Depends(admin_mfa_enforced)])


@router.get("/events", response_model=Page[EventOut], responses=error_responses(401, 403, 422))
def list_events(
    _admin: AdminUser,
    db: DbSession,
    page: Pagination,
    event_type: Annotated[
        EventType | None, Query(alias="type", description="Only events of this type")
    ] = None,
    state: Annotated[EventState | None, Query(description="Only events in this state")] = None,
) -> Page[EventOut]:
    """Recent domain events, newest first, with their delivery state, failed tries and the
    last error."""
    items, total = events_page(db, page, event_type=event_type, state=state)
    return to_page(EventOut, items, total, page)
