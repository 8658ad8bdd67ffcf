"""Service settings, read from environment variables (and an optional .env file)."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_MODEL_PATH = (
    Path(__file__).resolve().parent.parent / "model" / "artifacts" / "digitnet.keras"
)


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_file=".env", extra="ignore", protected_namespaces=())

    model_path: Path = Field(DEFAULT_MODEL_PATH, description="The Keras model to serve.")
    model_cache_dir: Path | None = Field(
        None,
        description="Where a model without a shipped LiteRT form is converted to at first "
        "start, which needs TensorFlow (default: a .cache folder beside the model; a "
        "temporary folder if that is read-only).",
    )
    inference_engine: Literal["auto", "litert", "litert-int8", "keras"] = Field(
        "auto",
        description="auto: litert-int8 where the CPU has an int8 dot-product instruction "
        "and the model card records an int8 form of the model, else litert; litert: the "
        "float32 LiteRT form shipped beside the model; litert-int8: its int8 form; keras: "
        "the Keras model itself (needs TensorFlow).",
    )
    host: str = "127.0.0.1"
    port: int = Field(8000, ge=1, le=65535)
    workers: int = Field(1, ge=1, description="Worker processes (one per container is best).")
    max_upload_bytes: int = Field(5 * 1024 * 1024, ge=1, description="Largest request body.")
    body_timeout_s: float = Field(
        30.0,
        gt=0,
        description="A request's whole body must arrive within this many seconds, else 408 "
        "(a slow or stalled client cannot hold a request open).",
    )
    max_pixels: int = Field(16_000_000, ge=1, description="Largest image, width × height.")
    max_batch_files: int = Field(64, ge=1, description="Most files in one /predict/batch call.")
    max_digits: int = Field(
        32, ge=1, description="Most digits /read reads in one image; more is a 422."
    )
    inline_max_pixels: int = Field(
        320 * 320,
        ge=0,
        description="Images up to this many pixels are preprocessed on the event loop; "
        "larger ones in a thread, so one big photo never stalls other requests.",
    )
    large_image_concurrency: int = Field(
        2,
        ge=1,
        description="Images over INLINE_MAX_PIXELS decoded at the same time; others wait "
        "their turn. Bounds memory under a flood (a 16 MP image needs up to ~200 MB while "
        "it is decoded) and costs no throughput beyond the CPU cores.",
    )
    batch_max_size: int = Field(
        32, ge=1, description="Most single-image requests read together (PNGs, then network)."
    )
    batch_max_wait_ms: float = Field(
        0.0,
        ge=0.0,
        description="How long a request may wait for others to share its batch "
        "(0: batch only what is already queued, never wait).",
    )
    event_loop: Literal["asyncio", "uvloop"] = Field(
        "asyncio",
        description="The worker's event loop. asyncio accepts every waiting connection at "
        "once; uvloop (libuv) accepts one per turn of a busy loop, so under load a new "
        "connection waits for the requests ahead of it many times over.",
    )
    log_level: Literal["critical", "error", "warning", "info", "debug"] = "info"


@lru_cache
def get_settings() -> Settings:
    return Settings()
