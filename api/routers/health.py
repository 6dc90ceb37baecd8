from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel

router = APIRouter(tags=["health"])


class HealthOut(BaseModel):
    status: str
    database: str
    workers: int


@router.get(
    "/health",
    response_model=HealthOut,
    responses={503: {"model": HealthOut, "description": "The database is unreachable"}},
)
def health(request: Request) -> JSONResponse:
    """Liveness and readiness; cheap enough for load balancers to poll."""
    state = request.app.state
    database_ok = state.database.is_reachable()
    engine = getattr(state, "processing", None)
    body = HealthOut(
        status="ok" if database_ok else "unavailable",
        database="ok" if database_ok else "unreachable",
        workers=engine.worker_count if engine is not None else 0,
    )
    return JSONResponse(body.model_dump(), status_code=200 if database_ok else 503)
