"""The application factory and its lifespan: ``uvicorn app.main:create_app --factory``."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi_offline import FastAPIOffline
from starlette.concurrency import run_in_threadpool

from app import __version__, memory, pairs
from app.api import errors
from app.api.files import Files
from app.api.main import ROUTERS
from app.api.middleware import BodySizeLimit, HeadAsGet
from app.api.routes.pages import STATIC_DIR
from app.api.routes.predict import PredictShortCut
from app.config import Settings, get_settings
from app.inference import ModelLoadError, load_classifier
from app.observability import Metrics, ObservabilityMiddleware
from app.predictor import Predictor

logger = logging.getLogger("app")

DESCRIPTION = """
Reads handwritten digits. POST an image (PNG, JPEG, GIF, BMP, WebP, TIFF, HEIC/HEIF,
AVIF: a phone photo of ink on paper, a canvas drawing, a scan, a screenshot) to
`/predict` and get the digit with all ten probabilities.

Every image is normalised the way MNIST was made before a Keras CNN reads it.
Errors are JSON `{"detail": ...}` with a 4xx status that says what was wrong.
"""


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    settings: Settings = app.state.settings
    tuned = memory.tune_malloc()  # reuse freed memory across requests (app/memory.py)
    logger.debug("malloc settings applied: %s", tuned or "none")
    try:
        classifier = await run_in_threadpool(
            load_classifier,
            settings.model_path,
            engine=settings.inference_engine,
            cache_dir=settings.model_cache_dir,
        )
        pair_reader = pairs.load(settings.model_path.parent)
    except ModelLoadError as error:
        logger.critical("cannot start: %s", error)
        raise
    metrics: Metrics = app.state.metrics
    metrics.set_model(
        name=classifier.name,
        version=classifier.version,
        engine=classifier.engine_name,
        sha256=classifier.sha256,
        load_seconds=classifier.load_seconds,
    )
    predictor = Predictor(
        classifier,
        settings,
        on_batch=metrics.observe_batch,
        on_inference=metrics.observe_inference,
        on_second_look=metrics.observe_second_looks,
        pair_reader=pair_reader,
    )
    await predictor.start()
    app.state.predictor = predictor
    frozen = memory.freeze_startup_objects()  # full collections skip them (app/memory.py)
    logger.debug("%d startup objects left out of garbage collection", frozen)
    logger.info(
        "model %s ready (%s engine, loaded in %.2f s)",
        classifier.version,
        classifier.engine_name,
        classifier.load_seconds,
    )
    try:
        yield
    finally:
        app.state.predictor = None
        await predictor.stop()
        metrics.worker_exited()


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()
    app = FastAPIOffline(
        title="digits",
        version=__version__,
        summary="Handwritten digit recognition: upload an image, get the digit.",
        description=DESCRIPTION,
        lifespan=lifespan,
        static_url="/static/docs",
        favicon_url="/static/favicon.svg",
        # FastAPI's own OpenTelemetry: the service keeps its metrics and request log
        # (app/observability.py), and with the API alone installed (no SDK, no
        # provider) it never records; its check for a provider cost every request
        # 3 µs (docs/performance.md).
        telemetry={"tracing": False, "metrics": False, "logs": False},
    )
    app.state.settings = settings
    app.state.predictor = None
    app.state.metrics = Metrics()
    app.add_middleware(PredictShortCut)  # innermost: the usual upload, before routing
    app.add_middleware(HeadAsGet)  # routing sees a GET
    app.add_middleware(
        BodySizeLimit, max_bytes=settings.max_upload_bytes, timeout=settings.body_timeout_s
    )
    # Outermost: sees every answer, the body limit's 413s included.
    app.add_middleware(ObservabilityMiddleware, metrics=app.state.metrics, routes=app.routes)
    errors.install(app)
    for router in ROUTERS:
        app.include_router(router)
    app.mount("/static", Files(directory=STATIC_DIR), name="static")
    return app
