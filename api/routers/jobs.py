"""Job routes: the caller's processing jobs (queued by /images/{id}/process and process-batch)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from api.dependencies import CurrentUserOrKey, DbSession
from api.models import JobStatus
from api.schemas.common import IdPath, Page, Pagination, error_responses, to_page
from api.schemas.job import JobOut
from api.services import jobs as job_service

router = APIRouter(prefix="/jobs", tags=["jobs"])


@router.get("", response_model=Page[JobOut], responses=error_responses(401, 422))
def list_jobs(
    user: CurrentUserOrKey,
    db: DbSession,
    page: Pagination,
    status: Annotated[JobStatus | None, Query(description="Only jobs in this status")] = None,
) -> Page[JobOut]:
    """The caller's jobs, newest first."""
    items, total = job_service.jobs_page(db, user, page, status)
    return to_page(JobOut, items, total, page)


@router.get("/{job_id}", response_model=JobOut, responses=error_responses(401, 403, 404, 422))
def get_job(job_id: IdPath, user: CurrentUserOrKey, db: DbSession) -> JobOut:
    return JobOut.model_validate(job_service.get_owned_job(db, user, job_id))
