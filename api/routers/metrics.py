"""`GET /metrics` for Prometheus: left out of the OpenAPI document, as it is for operators
(with its own token) and does not exist at all while METRICS_TOKEN is unset."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response

from api.dependencies import MetricsScrape

router = APIRouter(include_in_schema=False)


@router.get("/metrics")
def metrics(request: Request, source: MetricsScrape) -> Response:
    body, content_type = source.render(request.headers.get("accept"))
    return Response(body, media_type=content_type)
