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


async def one_file(request: Request) -> None:
    """422 when the form holds several files in the field ``file``: FastAPI would read
    the last and drop the others without a word. The form is the one FastAPI parsed
    (Starlette keeps it)."""
    count = len((await request.form()).getlist("file"))
    if count > 1:
        raise HTTPException(
            422,
            f"{count} files were sent as the field `file`; send one. "
            "POST /predict/batch reads several images (the field `files`).",
        )


async def get_app_settings(request: Request) -> Settings:
    return request.app.state.settings


PredictorDep = Annotated[Predictor, Depends(get_predictor)]
SettingsDep = Annotated[Settings, Depends(get_app_settings)]
OneFile = Depends(one_file)
