"""Liveness and readiness, for load balancers and orchestrators."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from app.api.errors import NOT_READY
from app.api.schemas import Health

router = APIRouter(prefix="/health", tags=["health"])


@router.get("/live", summary="The process is up", response_model_exclude_none=True)
async def live() -> Health:
    """200 whenever the process answers; restart the container only when this fails."""
    return Health(status="ok")


@router.get(
    "/ready",
    summary="The model is loaded and warmed",
    responses=NOT_READY,
    response_model_exclude_none=True,
)
async def ready(request: Request) -> Health:
    """200 once the model is loaded and has run one inference; 503 before (and
    while shutting down), so no traffic is routed here too early."""
    predictor = getattr(request.app.state, "predictor", None)
    if predictor is None:
        body = Health(status="loading", model_loaded=False)
        return JSONResponse(body.model_dump(), status_code=503, headers={"Retry-After": "1"})
    return Health(status="ok", model_loaded=True, model_version=predictor.classifier.version)
