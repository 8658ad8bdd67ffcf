"""All routers, in one place, in the order requests are matched against them.

The app includes each one itself rather than through one parent router: with
FastAPI 0.163 a nested router costs every request a walk through its version
bookkeeping, ~140 Python calls of the ~1,150 a prediction makes (cProfile).
"""

from fastapi import APIRouter

from app.api.routes import health, metrics, model, oip, pages, predict, read

ROUTERS: tuple[APIRouter, ...] = (
    predict.router,
    read.router,
    health.router,
    model.router,
    oip.router,
    pages.router,
    metrics.router,
)
