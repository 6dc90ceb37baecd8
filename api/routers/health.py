from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from api.core.readiness import OK

router = APIRouter(tags=["health"])

_STATE = "`ok` or `unreachable`"


class HealthOut(BaseModel):
    status: str = Field(description="`ok`, or `unavailable` when a required part is unreachable")
    database: str = Field(description=_STATE)
    workers: int = Field(description="Processing processes in this API process (0 under Celery)")
    rate_limits: str | None = Field(
        None,
        description=f"The shared rate-limit store (required), {_STATE}; only when "
        "RATE_LIMIT_STORAGE_URI is not memory://",
    )
    object_store: str | None = Field(
        None, description=f"The S3 bucket (required), {_STATE}; under STORAGE_BACKEND=s3 only"
    )
    cache: str | None = Field(
        None,
        description=f"The Redis cache (reported, not required), {_STATE}; when CACHE_URL is set",
    )
    broker: str | None = Field(
        None,
        description=f"RabbitMQ (reported, not required), {_STATE}: the jobs' broker under "
        "PROCESSING_BACKEND=celery, else the events' when EVENTS_BROKER_URL is set",
    )
    events_broker: str | None = Field(
        None,
        description=f"The events' broker (reported, not required), {_STATE}; only when it is "
        "not the jobs' broker",
    )
    detail: str | None = Field(None, description="On 503: which required parts are unreachable")


@router.get(
    "/health",
    response_model=HealthOut,
    response_model_exclude_none=True,
    responses={
        503: {"model": HealthOut, "description": "A required part (named in detail) is down"}
    },
)
async def health(request: Request) -> JSONResponse:
    """Liveness and readiness; cheap enough for load balancers to poll. Every configured part
    is probed at once, each for at most HEALTH_CHECK_TIMEOUT_S, off the event loop."""
    state = request.app.state
    readiness = await state.readiness.check()
    body = HealthOut(
        status=OK if readiness.ready else "unavailable",
        workers=state.job_runner.processing_workers,
        detail=None if readiness.ready else _not_ready(readiness.failing_required),
        **readiness.states,
    )
    return JSONResponse(
        body.model_dump(exclude_none=True), status_code=200 if readiness.ready else 503
    )


def _not_ready(names: list[str]) -> str:
    return "Not ready: " + ", ".join(f"{name} unreachable" for name in names)
