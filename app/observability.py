"""What the service tells operators: Prometheus metrics, JSON logs, request IDs.

- ``Metrics``: every metric the service exports, in a registry of its own per
  app (several apps in one process, as in the tests, never collide). With
  ``PROMETHEUS_MULTIPROC_DIR`` set (several workers), values go to files there
  and ``GET /metrics`` adds up all workers.
- ``ObservabilityMiddleware``: pure ASGI; gives each request an ``X-Request-ID``
  (the client's, if sane, else a new one) and echoes it, counts and times the
  request by route template and status, and logs one line for it
  (``app.logs``). Route handlers add fields to that line (digit, confidence) with
  ``annotate``.

No image bytes ever reach a log line or a label.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import random
import re
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from fastapi.routing import iter_route_contexts
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    ProcessCollector,
    disable_created_metrics,
    generate_latest,
    multiprocess,
)
from starlette.routing import Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.logs import access_logger, request_record

# The *_created series (when each counter was first used) are noise for this service.
disable_created_metrics()

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
METRICS_CONTENT_TYPE = CONTENT_TYPE_LATEST
REQUEST_ID_HEADER = b"x-request-id"
LOG_FIELDS = "digits.log"  # scope key: the dict route handlers add log fields to
REQUEST_ID = "digits.request_id"  # scope key: this request's ID
UNMATCHED = "unmatched"  # route label of requests no route matched (404s)
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
_SANE_REQUEST_ID = re.compile(rb"[A-Za-z0-9._:=+/@-]{1,128}")

# Most requests take about a millisecond; photos tens of milliseconds.
LATENCY_BUCKETS = (
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
)  # fmt: skip
STAGE_BUCKETS = (
    0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25,
    0.5, 1.0, 2.5,
)  # fmt: skip
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64)
CONFIDENCE_BUCKETS = (0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.99, 0.999)


def multiprocess_dir() -> Path | None:
    """The shared metrics folder of a multi-worker server, if one is configured."""
    value = os.environ.get(MULTIPROC_ENV)
    return Path(value) if value else None


class Metrics:
    """The service's metrics. Thread-safe: inference threads record too."""

    def __init__(self, registry: CollectorRegistry | None = None):
        self.multiprocess = multiprocess_dir() is not None
        self.registry = registry if registry is not None else CollectorRegistry()
        r = self.registry
        self.requests = Counter(
            "digits_http_requests",
            "HTTP requests answered, by method, route template and status.",
            ["method", "route", "status"],
            registry=r,
        )
        self.latency = Histogram(
            "digits_http_request_duration_seconds",
            "Time from the request's arrival to the end of its response body.",
            ["method", "route", "status"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.in_flight = Gauge(
            "digits_http_requests_in_flight",
            "Requests being handled now.",
            registry=r,
            multiprocess_mode="livesum",
        )
        self.predictions = Counter(
            "digits_predictions",
            "Digits read, by the digit the model answered (single and batch uploads).",
            ["digit"],
            registry=r,
        )
        self.confidence = Histogram(
            "digits_prediction_confidence",
            "Probability of the answered digit; a shift down hints at unusual uploads.",
            buckets=CONFIDENCE_BUCKETS,
            registry=r,
        )
        self.preprocess = Histogram(
            "digits_preprocess_seconds",
            "Time to turn one readable upload into the network's 28x28 input "
            "(any wait for a large-image decoding slot included; small PNGs read "
            "together in a micro-batch: each an equal share).",
            buckets=STAGE_BUCKETS,
            registry=r,
        )
        self.inference = Histogram(
            "digits_inference_seconds",
            "Time of one network call (a micro-batch or a /predict/batch call).",
            buckets=STAGE_BUCKETS,
            registry=r,
        )
        self.batch_size = Histogram(
            "digits_batch_size",
            "Single-image requests the micro-batcher ran through the network together.",
            buckets=BATCH_BUCKETS,
            registry=r,
        )
        self.second_looks = Counter(
            "digits_second_looks",
            "Inputs the network was unsure of, read five more times (app.second_look); "
            "a rise against digits_predictions hints at uploads unlike the training data.",
            registry=r,
        )
        self.model_load = Gauge(
            "digits_model_load_seconds",
            "Time the served model took to load, convert if needed, and warm up.",
            registry=r,
            multiprocess_mode="livemax",
        )
        self.model_info = Gauge(
            "digits_model_info",
            "The served model (always 1; the labels say which).",
            ["name", "version", "engine", "sha256"],
            registry=r,
            multiprocess_mode="livemax",
        )
        if not self.multiprocess:
            # Memory, CPU, open files of this process (per worker, so single-process only).
            ProcessCollector(registry=r)
        self._children: dict[tuple[str, str, int], tuple[Any, Any]] = {}
        self._digits = [self.predictions.labels(digit=str(d)) for d in range(10)]
        for digit in self._digits:
            digit.inc(0)  # every digit is exported from the start, at 0

    def observe_request(self, method: str, route: str, status: int, seconds: float) -> None:
        key = (method, route, status)
        children = self._children.get(key)
        if children is None:
            labels = {"method": method, "route": route, "status": str(status)}
            children = (self.requests.labels(**labels), self.latency.labels(**labels))
            self._children[key] = children
        children[0].inc()
        children[1].observe(seconds)

    def observe_prediction(self, digit: int, confidence: float, preprocess_seconds: float) -> None:
        self._digits[digit].inc()
        self.confidence.observe(confidence)
        self.preprocess.observe(preprocess_seconds)

    def observe_inference(self, seconds: float) -> None:
        self.inference.observe(seconds)

    def observe_second_looks(self, count: int) -> None:
        self.second_looks.inc(count)

    def observe_batch(self, size: int) -> None:
        self.batch_size.observe(size)

    def set_model(
        self, *, name: str, version: str, engine: str, sha256: str, load_seconds: float
    ) -> None:
        self.model_info.clear()
        self.model_info.labels(name=name, version=version, engine=engine, sha256=sha256).set(1)
        self.model_load.set(load_seconds)

    def exposition(self) -> bytes:
        """The Prometheus text format: this process's metrics, or all workers' ones."""
        if self.multiprocess:
            registry = CollectorRegistry()
            multiprocess.MultiProcessCollector(registry)
            return generate_latest(registry)
        return generate_latest(self.registry)

    def worker_exited(self) -> None:
        """Drop this worker's live gauges from the shared folder (multi-worker only)."""
        if self.multiprocess:
            multiprocess.mark_process_dead(os.getpid())


def clear_multiprocess_dir() -> None:
    """Empty the shared metrics folder before a multi-worker server starts."""
    folder = multiprocess_dir()
    if folder is None:
        return
    folder.mkdir(parents=True, exist_ok=True)
    for stale in folder.glob("*.db"):
        stale.unlink(missing_ok=True)


# ---------------------------------------------------------------------------------------
# Request IDs and log fields


def annotate(scope: Scope, **fields: Any) -> None:
    """Add fields (digit, confidence, error, ...) to this request's log line."""
    log_fields = scope.get(LOG_FIELDS)
    if log_fields is not None:
        log_fields.update(fields)


def new_request_id() -> str:
    """A request ID for a request that brought none: 32 random hex digits.

    From ``random`` (seeded from the OS at start, and again in a forked worker), not
    from ``os.urandom``: an ID tells requests apart in logs and grants nothing, and
    the system call each request cost 1.4 % of a worker's time under load."""
    return f"{random.getrandbits(128):032x}"


def request_id(scope: Scope) -> str | None:
    return scope.get(REQUEST_ID)


# ---------------------------------------------------------------------------------------
# Middleware


def _error_body(rid: str) -> bytes:
    return json.dumps({"detail": f"Internal server error (request {rid})."}).encode()


def _server_error(rid: str) -> Message:
    return {
        "type": "http.response.start",
        "status": 500,
        "headers": [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(_error_body(rid))).encode()),
        ],
    }


class ObservabilityMiddleware:
    """Request ID, metrics and one log line per HTTP request; pure ASGI, a few µs each.

    ``routes`` (the app's routes) names requests that ended before routing, such
    as a body refused at the door, by the route their path would have reached.
    """

    def __init__(self, app: ASGIApp, metrics: Metrics, routes: Iterable[Any] = ()):
        self.app = app
        self.metrics = metrics
        self._routes = routes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        root_path = scope.get("root_path", "")  # as routing found it (mounts extend it)
        rid = None
        for name, value in scope["headers"]:
            if name == REQUEST_ID_HEADER:
                if _SANE_REQUEST_ID.fullmatch(value):
                    rid = value.decode("ascii")
                break
        if rid is None:
            rid = new_request_id()
        id_header = (REQUEST_ID_HEADER, rid.encode("ascii"))
        fields: dict[str, Any] = {}
        scope[REQUEST_ID] = rid
        scope[LOG_FIELDS] = fields
        status = 0  # none sent yet

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message = {**message, "headers": [*message.get("headers", ()), id_header]}
            await send(message)

        in_flight = self.metrics.in_flight
        in_flight.inc()
        try:
            await self.app(scope, receive, send_with_id)
        except Exception:
            if not status:  # a bug: answer as every other error, with the ID to report
                with contextlib.suppress(Exception):  # the client may be gone
                    await send_with_id(_server_error(rid))
                    await send_with_id({"type": "http.response.body", "body": _error_body(rid)})
            raise  # for the server to log with its traceback
        finally:
            status = status or 500
            in_flight.dec()
            seconds = time.perf_counter() - started
            method = scope["method"]
            if method not in METHODS:
                method = "other"
            route = self._route(scope, root_path)
            self.metrics.observe_request(method, route, status, seconds)
            level = logging.INFO if status < 500 else logging.ERROR
            if access_logger.isEnabledFor(level):
                client = scope.get("client")
                line = {
                    "request_id": rid,
                    "method": method,
                    "route": route,
                    "path": scope["path"],
                    "status": status,
                    "latency_ms": round(seconds * 1000.0, 3),
                    "client": client[0] if client else None,
                    **fields,
                }
                access_logger.handle(request_record(level, line))

    def _route(self, scope: Scope, root_path: str) -> str:
        path = getattr(scope.get("route"), "path", None)
        if path is not None:
            return path or "/"
        # Mounts (static files), answers before routing (413 at the door), 404s:
        # match again, here only, to name the route the path reaches, if any.
        probe = {**scope, "root_path": root_path}
        for route in iter_route_contexts(self._routes):  # included routers flattened
            if route.matches(probe)[0] is not Match.NONE:
                return route.path or "/"
        return UNMATCHED


__all__ = [
    "METRICS_CONTENT_TYPE",
    "Metrics",
    "ObservabilityMiddleware",
    "annotate",
    "clear_multiprocess_dir",
    "new_request_id",
    "request_id",
]
