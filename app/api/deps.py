"""Typed dependencies for the routes.

Async on purpose: FastAPI runs a plain ``def`` dependency in a worker thread, a
hop that cost more than a whole preprocessing of a small image.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, HTTPException, Request

from app.config import Settings
from app.predictor import Predictor


async def get_predictor(request: Request) -> Predictor:
    predictor = getattr(request.app.state, "predictor", None)
    if predictor is None:
        raise HTTPException(503, "The model is not loaded yet.", headers={"Retry-After": "1"})
    return predictor


async def get_app_settings(request: Request) -> Settings:
    return request.app.state.settings


PredictorDep = Annotated[Predictor, Depends(get_predictor)]
SettingsDep = Annotated[Settings, Depends(get_app_settings)]
