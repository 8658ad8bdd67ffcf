"""The service's logs: one JSON object per line on stderr, for our loggers and uvicorn's.

Every request writes one line (``app.observability``'s middleware), so the line's
cost is a share of every request's: at 64 connections on one core the lines took
6-11 % of the rate (``LOG_LEVEL=warning`` against ``info``), and each step here is
cut to what the line needs (docs/operations.md):

- ``request_record``: the request's ``LogRecord`` from a copy of a template made
  once per process and thread, not built attribute by attribute;
- ``JsonFormatter``: the request line's object straight from its fields, the
  time's date and second formatted once a second;
- ``TurnFlushedHandler``: request lines logged on the event loop are formatted
  and written once per turn of the loop, all of that turn's together: the
  requests answered together cost one write, not one each. Any other line
  (a warning, uvicorn's, another thread's) is written at once.
"""

from __future__ import annotations

import asyncio
import json
import logging
import logging.config
import math
import os
import threading
import time
from datetime import UTC, datetime
from typing import Any

import pythonjsonlogger.json
from pythonjsonlogger.core import RESERVED_ATTRS

access_logger = logging.getLogger("app.access")
RENAMED = {"levelname": "level", "name": "logger", "process": "pid"}
REQUEST_MESSAGE = "request"


class JsonFormatter(pythonjsonlogger.json.JsonFormatter):
    """One JSON object per line: time (ISO 8601, UTC), level, logger, pid, message,
    and any extra fields.

    The per-request line takes a fast path to the same object (it carries its
    fields ready in ``record.request_fields``): python-json-logger's general path
    costs some 20 µs a line, a noticeable share of a request that takes 300.
    """

    def __init__(self, **options: Any):
        options.setdefault("fmt", "%(levelname)s %(name)s %(process)s %(message)s")
        options.setdefault("rename_fields", RENAMED)
        options.setdefault("timestamp", "time")
        # uvicorn's colour-coded copy of each message is not for machines.
        options.setdefault("reserved_attrs", [*RESERVED_ATTRS, "color_message", "request_fields"])
        super().__init__(**options)
        self._second: tuple[float, str] = (math.nan, "")  # a second and its date and time

    def format(self, record: logging.LogRecord) -> str:
        fields = record.__dict__.get("request_fields")
        if fields is None or record.exc_info or record.stack_info:
            return super().format(record)
        line = {
            "level": record.levelname,
            "logger": record.name,
            "pid": record.process,
            "message": record.getMessage(),
            **fields,
            "time": self.iso_time(record.created),
        }
        try:
            return json.dumps(line)  # the shared encoder: fastest
        except TypeError:
            return json.dumps(line, default=str)

    def iso_time(self, created: float) -> str:
        """``datetime.fromtimestamp(created, tz=UTC).isoformat()``, the same string
        (its rounding to the microsecond included), at a third of the cost."""
        fraction, whole = math.modf(created)
        micro = round(fraction * 1e6)
        if micro >= 1_000_000:
            whole, micro = whole + 1, micro - 1_000_000
        second = self._second  # one read: another thread may replace it meanwhile
        if second[0] != whole:
            second = (whole, datetime.fromtimestamp(whole, tz=UTC).isoformat()[:-6])
            self._second = second
        return f"{second[1]}.{micro:06d}+00:00" if micro else f"{second[1]}+00:00"


_templates: dict[tuple[int, int, int], dict[str, Any]] = {}


def request_record(level: int, fields: dict[str, Any]) -> logging.LogRecord:
    """The access log's record of one request: what ``access_logger.makeRecord`` makes
    of the message "request" with ``extra=fields`` (at a third of its cost), plus
    ``request_fields``, which ``JsonFormatter`` writes without looking further."""
    key = (os.getpid(), threading.get_ident(), level)
    template = _templates.get(key)
    if template is None:
        made = access_logger.makeRecord(
            access_logger.name, level, __file__, 0, REQUEST_MESSAGE, None, None
        )
        template = _templates[key] = dict(made.__dict__)
    record = logging.LogRecord.__new__(logging.LogRecord)
    attributes = record.__dict__
    attributes.update(template)
    created = time.time()
    attributes["created"] = created
    attributes["msecs"] = int((created - int(created)) * 1000) + 0.0  # as LogRecord
    attributes["relativeCreated"] = (
        template["relativeCreated"] + (created - template["created"]) * 1000.0
    )
    attributes.update(fields)
    attributes["request_fields"] = fields
    return record


class TurnFlushedHandler(logging.StreamHandler):
    """A ``StreamHandler`` that works once per turn of the event loop for request lines.

    A request's line (a record carrying ``request_fields``, below WARNING) logged on
    a thread running an event loop waits for the loop's next turn, where that turn's
    lines are formatted one after another and leave in one write: under load the
    requests answered together are logged together, the formatter's code and data
    still in the CPU's caches from one line to the next. Any other record (uvicorn's,
    a warning, another thread's) first writes the lines waiting, then itself at once,
    so lines keep their order; ``flush`` (at exit too) writes those waiting. A stream
    without a byte buffer (``stream.buffer``) is written line by line."""

    def __init__(self, stream: Any = None):
        super().__init__(stream)
        self._waiting: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.levelno < logging.WARNING and "request_fields" in record.__dict__:
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:
                loop = None
            if loop is not None and hasattr(self.stream, "buffer"):
                if not self._waiting:
                    loop.call_soon(self.flush)
                self._waiting.append(record)
                return
        self._write_waiting()
        super().emit(record)

    def flush(self) -> None:
        with self.lock:
            self._write_waiting()
            super().flush()

    def _write_waiting(self) -> None:
        """The waiting lines into the stream's byte buffer, formatted in a row (the
        caller holds the lock)."""
        if not self._waiting:
            return
        waiting, self._waiting = self._waiting, []
        lines = []
        for record in waiting:
            try:
                lines.append(self.format(record) + self.terminator)
            except RecursionError:
                raise
            except Exception:
                self.handleError(record)
        stream = self.stream
        try:
            text = "".join(lines).encode(stream.encoding or "utf-8", stream.errors or "strict")
            # Unbuffered (PYTHONUNBUFFERED, as in the image) the buffer is the file itself,
            # whose write may take part of a long text.
            rest = memoryview(text)
            while rest:
                written = stream.buffer.write(rest)
                if not written:
                    raise OSError(f"the log stream took none of {len(rest)} bytes")
                rest = rest[written:]
        except RecursionError:
            raise
        except Exception:
            self.handleError(waiting[-1])


def logging_config(level: str = "info") -> dict:
    """A ``logging.config.dictConfig`` dict: JSON lines on stderr for us and uvicorn.

    Passed to uvicorn as its ``log_config``, so every worker process applies it.
    """
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {
            "json": {"()": "app.logs.JsonFormatter"},
        },
        "handlers": {
            "stderr": {
                "class": "app.logs.TurnFlushedHandler",
                "formatter": "json",
                "stream": "ext://sys.stderr",
            }
        },
        "root": {"handlers": ["stderr"], "level": level.upper()},
        "loggers": {
            # uvicorn's own handlers replaced by ours; its access log by our request line.
            "uvicorn": {"handlers": [], "level": level.upper(), "propagate": True},
            "uvicorn.error": {"handlers": [], "propagate": True},
            "uvicorn.access": {"handlers": [], "level": "WARNING", "propagate": False},
        },
    }


def configure_logging(level: str = "info") -> None:
    logging.config.dictConfig(logging_config(level))
