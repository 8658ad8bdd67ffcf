"""GET /metrics: the Prometheus scrape endpoint."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response

from app.observability import METRICS_CONTENT_TYPE

router = APIRouter(tags=["operations"])


@router.get(
    "/metrics",
    summary="Metrics in the Prometheus text format",
    response_class=Response,
    responses={
        200: {
            "description": "Prometheus text exposition format 0.0.4.",
            "content": {"text/plain": {"schema": {"type": "string"}}},
        }
    },
)
async def metrics(request: Request) -> Response:
    """Request counts and latencies by route and status, requests in flight, digits
    read, preprocessing and inference times, batch sizes, and the served model.
    docs/operations.md explains each metric and gives sample alert rules."""
    return Response(request.app.state.metrics.exposition(), media_type=METRICS_CONTENT_TYPE)
