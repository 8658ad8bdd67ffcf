"""Serve the app: ``python -m app`` (HOST, PORT, WORKERS and the rest from the environment).

The model is checked (and converted, the first time) here, before any worker
starts, so a missing or corrupt model stops the service with one clear line and
every worker then starts from the warm conversion cache.
"""

from __future__ import annotations

import logging
import sys

import uvicorn

from app.config import get_settings
from app.inference import ModelLoadError, prepare


def main() -> int:
    settings = get_settings()
    logging.basicConfig(level=settings.log_level.upper(), format="%(levelname)s: %(message)s")
    try:
        prepare(
            settings.model_path,
            engine=settings.inference_engine,
            cache_dir=settings.model_cache_dir,
        )
    except ModelLoadError as error:
        logging.getLogger("app").critical("cannot start: %s", error)
        return 2
    uvicorn.run(
        "app.main:create_app",
        factory=True,
        host=settings.host,
        port=settings.port,
        workers=settings.workers,
        log_level=settings.log_level,
        timeout_graceful_shutdown=20,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
