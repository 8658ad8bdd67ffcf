"""Serve the app: ``python -m app`` (HOST, PORT, WORKERS and the rest from the environment).

The model is checked (and converted, the first time) here, before any worker
starts, so a missing or corrupt model stops the service with one clear line and
every worker then starts from the warm conversion cache.

The cyclic garbage collector is off while the process imports and loads: those
hundreds of thousands of new objects are nearly all kept, so its passes found
next to nothing and cost ~8 % of the cold start (docs/performance.md).
``memory.freeze_startup_objects`` turns it back on once the app is ready.
"""

from __future__ import annotations

import gc

gc.disable()  # before the imports below; see the module's docstring

import logging
import signal
import sys

import uvicorn

from app.config import get_settings
from app.inference import ModelLoadError, prepare
from app.logs import configure_logging, logging_config
from app.observability import clear_multiprocess_dir
from app.protocol import JsonErrorsProtocol


def _stopped(signum: int, frame: object) -> None:
    """uvicorn re-raises SIGTERM after its graceful shutdown: by then it is a clean stop."""
    raise SystemExit(0)


def main() -> int:
    settings = get_settings()
    configure_logging(settings.log_level)  # JSON lines on stderr
    try:
        prepare(
            settings.model_path,
            engine=settings.inference_engine,
            cache_dir=settings.model_cache_dir,
        )
    except ModelLoadError as error:
        logging.getLogger("app").critical("cannot start: %s", error)
        return 2
    clear_multiprocess_dir()  # metrics of a previous run must not add up with ours
    signal.signal(signal.SIGTERM, _stopped)  # exit 0, not 143, once requests have finished
    uvicorn.run(
        "app.main:create_app",
        factory=True,
        host=settings.host,
        port=settings.port,
        workers=settings.workers,
        loop=settings.event_loop,
        http=JsonErrorsProtocol,  # its own 400s in JSON, as the app's
        log_level=settings.log_level,
        log_config=logging_config(settings.log_level),  # applied in every worker
        access_log=False,  # the app logs one JSON line per request instead
        timeout_graceful_shutdown=20,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
