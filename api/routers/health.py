from __future__ import annotations

from typing import Literal

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

router = APIRouter(tags=["health"])


class HealthOut(BaseModel):
    status: str
    database: str
    workers: int = Field(description="Processing processes in this API process (0 under Celery)")
    broker: Literal["ok", "unreachable"] | None = Field(
        None, description="Under PROCESSING_BACKEND=celery only: whether RabbitMQ answers"
    )


@router.get(
    "/health",
    response_model=HealthOut,
    responses={503: {"model": HealthOut, "description": "The database is unreachable"}},
)
def health(request: Request) -> JSONResponse:
    """Liveness and readiness; cheap enough for load balancers to poll."""
    state = request.app.state
    database_ok = state.database.is_reachable()
    runner = getattr(state, "job_runner", None)
    processing = runner.health() if runner is not None else {"workers": 0}
    body = HealthOut(
        status="ok" if database_ok else "unavailable",
        database="ok" if database_ok else "unreachable",
        **processing,
    )
    return JSONResponse(body.model_dump(exclude_none=True), status_code=200 if database_ok else 503)
