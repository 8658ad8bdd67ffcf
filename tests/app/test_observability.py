"""Metrics, request IDs and the JSON request log (issue 7)."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import re
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import numpy as np
import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from app import logs
from app.config import Settings
from app.logs import JsonFormatter, access_logger, logging_config
from app.main import create_app
from app.observability import Metrics, new_request_id
from tests.app.test_preprocessing import stroke_digit
from tests.conftest import LiveServer, http_scope, png_bytes

SEVEN = png_bytes(stroke_digit())


def samples(text: str) -> dict[tuple[str, frozenset], float]:
    """Every sample of a Prometheus exposition, keyed by name and labels."""
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(metrics: dict, name: str, /, **labels: str) -> float:
    return metrics.get((name, frozenset(labels.items())), 0.0)


def predictions_by_digit(metrics: dict) -> dict[int, float]:
    """digits_predictions_total by digit, the digits never answered left out."""
    counts = {d: value(metrics, "digits_predictions_total", digit=str(d)) for d in range(10)}
    return {digit: count for digit, count in counts.items() if count}


@pytest.fixture(scope="module")
def fresh(settings: Settings) -> Iterator[TestClient]:
    """An app of its own, so the counts below are exactly this module's requests."""
    with TestClient(create_app(settings)) as client:
        yield client


def test_metrics_count_requests_by_route_template_and_status(fresh: TestClient) -> None:
    upload = {"file": ("seven.png", SEVEN, "image/png")}
    assert fresh.post("/predict", files=upload).status_code == 200
    assert fresh.post("/predict", files={"file": ("e.png", b"", "image/png")}).status_code == 400
    files = [("files", ("a.png", SEVEN, "image/png")), ("files", ("b.png", b"?", "image/png"))]
    assert fresh.post("/predict/batch", files=files).status_code == 200
    assert fresh.get("/no/such/page/12345").status_code == 404
    assert fresh.get("/static/no-such-file.css").status_code == 404
    response = fresh.post("/predict", content=b"x", headers={"Content-Length": str(10**9)})
    assert response.status_code == 413  # refused before routing, still labelled by route

    response = fresh.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    metrics = samples(response.text)

    def requests(method: str, route: str, status: int) -> float:
        labels = {"method": method, "route": route, "status": str(status)}
        return value(metrics, "digits_http_requests_total", **labels)

    assert requests("POST", "/predict", 200) == 1
    assert requests("POST", "/predict", 400) == 1
    assert requests("POST", "/predict", 413) == 1
    assert requests("POST", "/predict/batch", 200) == 1
    assert requests("GET", "unmatched", 404) == 1  # raw paths never become labels
    assert requests("GET", "/static", 404) == 1
    assert not any("12345" in str(labels) for _, labels in metrics)
    latency = {"method": "POST", "route": "/predict", "status": "200"}
    assert value(metrics, "digits_http_request_duration_seconds_count", **latency) == 1
    assert value(metrics, "digits_http_request_duration_seconds_sum", **latency) > 0
    assert value(metrics, "digits_http_requests_in_flight") == 1  # the scrape itself

    # Two sevens read (one single, one in the batch), each counted under its digit.
    assert predictions_by_digit(metrics) == {7: 2}
    assert value(metrics, "digits_prediction_confidence_count") == 2
    assert value(metrics, "digits_preprocess_seconds_count") == 2
    # One micro-batch of one, plus the /predict/batch network call.
    assert value(metrics, "digits_batch_size_count") == 1
    assert value(metrics, "digits_batch_size_bucket", le="1.0") == 1
    assert value(metrics, "digits_inference_seconds_count") == 2


def test_metrics_describe_the_served_model(fresh: TestClient) -> None:
    model = fresh.get("/model").json()
    metrics = samples(fresh.get("/metrics").text)
    info = {
        "name": model["name"],
        "version": model["version"],
        "engine": model["engine"],
        "sha256": model["sha256"],
    }
    assert value(metrics, "digits_model_info", **info) == 1
    assert value(metrics, "digits_model_load_seconds") > 0
    assert value(metrics, "process_resident_memory_bytes") > 0
    for digit in range(10):  # every digit exported from the start
        assert ("digits_predictions_total", frozenset({("digit", str(digit))})) in metrics


def test_each_app_has_its_own_registry(settings: Settings) -> None:
    first, second = create_app(settings), create_app(settings)
    assert first.state.metrics.registry is not second.state.metrics.registry
    TestClient(first).get("/health/live")
    count = 'digits_http_requests_total{method="GET",route="/health/live",status="200"}'
    assert f"{count} 1.0" in first.state.metrics.exposition().decode()
    assert count not in second.state.metrics.exposition().decode()


def test_metrics_is_documented_as_text(fresh: TestClient) -> None:
    operation = fresh.get("/openapi.json").json()["paths"]["/metrics"]["get"]
    assert "text/plain" in operation["responses"]["200"]["content"]


def test_a_sane_request_id_is_echoed(fresh: TestClient) -> None:
    for given in ("abc-123", "0f8fad5b-d9cb-469f-a165-70867728950e", "Root=1-5759e988/x:y"):
        response = fresh.get("/health/live", headers={"X-Request-ID": given})
        assert response.headers["x-request-id"] == given


@pytest.mark.parametrize(
    "given",
    [None, b"", b"x" * 129, b"has space", b'quote"d', b"new\nline", "é".encode(), b"<script>"],
)
def test_otherwise_a_request_id_is_generated(fresh: TestClient, given: bytes | None) -> None:
    """Raw ASGI, since HTTP clients refuse to send some of these at all."""
    headers = [] if given is None else [(b"x-request-id", given)]
    scope = http_scope("GET", "/health/live", headers)
    sent: list[dict] = []

    async def receive() -> dict:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict) -> None:
        sent.append(message)

    ids = []
    for _ in range(2):
        sent.clear()
        asyncio.run(fresh.app(dict(scope), receive, send))
        assert sent[0]["status"] == 200
        [echoed] = [value for name, value in sent[0]["headers"] if name == b"x-request-id"]
        assert re.fullmatch(rb"[0-9a-f]{32}", echoed)
        ids.append(echoed)
    assert ids[0] != ids[1]


def request_records(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [record for record in caplog.records if record.name == "app.access"]


def test_one_log_line_per_request_with_the_digit(
    fresh: TestClient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="app.access")
    upload = {"file": ("seven.png", SEVEN, "image/png")}
    response = fresh.post("/predict", files=upload, headers={"X-Request-ID": "req-7"})
    body = response.json()
    [record] = request_records(caplog)
    assert record.request_id == "req-7"
    assert (record.method, record.route, record.path, record.status) == (
        "POST",
        "/predict",
        "/predict",
        200,
    )
    assert record.digit == body["digit"]
    assert record.confidence == pytest.approx(body["confidence"], abs=1e-4)
    assert 0 < record.latency_ms < 10_000

    # As the server writes it: one JSON object on one line, and never the image.
    formatter = logging.config.DictConfigurator({}).configure_formatter(
        logging_config()["formatters"]["json"]
    )
    line = formatter.format(record)
    assert "\n" not in line and len(line) < 1000
    fields = json.loads(line)
    assert fields["message"] == "request" and fields["level"] == "INFO"
    assert fields["request_id"] == "req-7" and fields["status"] == 200
    assert fields["digit"] == body["digit"] and "time" in fields
    assert "PNG" not in line and "seven.png" not in line


def test_errors_and_batches_are_logged_too(
    fresh: TestClient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="app.access")
    fresh.post("/predict", files={"file": ("x.png", b"not an image", "image/png")})
    files = [("files", ("a.png", SEVEN, "image/png")), ("files", ("b.png", b"", "image/png"))]
    fresh.post("/predict/batch", files=files)
    fresh.get("/nowhere")
    error, batch, missing = request_records(caplog)
    assert (error.status, error.error) == (415, "UnsupportedImageError")
    assert not hasattr(error, "digit")
    assert batch.status == 200 and batch.files == 2
    assert len(batch.digits) == 2 and batch.digits[1] is None
    assert (missing.status, missing.route, missing.path) == (404, "unmatched", "/nowhere")


def test_a_server_error_is_counted_and_logged(
    settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    app = create_app(settings)

    @app.get("/boom")
    async def boom() -> None:
        raise RuntimeError("boom")

    caplog.set_level(logging.INFO, logger="app.access")
    with TestClient(app, raise_server_exceptions=False) as client:
        response = client.get("/boom", headers={"X-Request-ID": "bug-1"})
    assert response.status_code == 500
    assert response.headers["x-request-id"] == "bug-1"  # for the user to report
    assert response.json() == {"detail": "Internal server error (request bug-1)."}
    [record] = request_records(caplog)
    assert (record.status, record.route, record.levelname) == (500, "/boom", "ERROR")
    metrics = samples(app.state.metrics.exposition().decode())
    labels = {"method": "GET", "route": "/boom", "status": "500"}
    assert value(metrics, "digits_http_requests_total", **labels) == 1
    assert value(metrics, "digits_http_requests_in_flight") == 0


def test_logging_config_replaces_uvicorns_access_log() -> None:
    config = logging_config("warning")
    assert config["root"]["level"] == "WARNING"
    assert config["loggers"]["uvicorn.access"]["propagate"] is False
    record = logging.LogRecord("uvicorn.error", logging.INFO, "", 0, "Started %s", ("x",), None)
    record.color_message = "Started \x1b[36m%s\x1b[0m"
    line = json.loads(JsonFormatter().format(record))
    assert line["message"] == "Started x" and "color_message" not in line


def test_the_fast_request_line_is_the_general_json_line() -> None:
    fields = {"request_id": "r", "route": "/predict", "status": 200, "digits": [1, None]}
    record = access_logger.makeRecord(
        "app.access", logging.INFO, "", 0, "request", None, None, extra=fields
    )
    formatter = JsonFormatter()
    general = json.loads(formatter.format(record))
    record.request_fields = fields  # as the middleware sends it: takes the fast path
    fast = json.loads(formatter.format(record))
    assert fast == general
    assert set(fast) == {"time", "level", "logger", "pid", "message", *fields}


def workers_ready(log: str) -> set[int]:
    """The pids of the workers whose model is loaded, from the server's JSON log."""
    lines = [json.loads(line) for line in log.splitlines() if line.startswith("{")]
    return {line["pid"] for line in lines if " ready (" in line.get("message", "")}


@pytest.mark.slow
def test_several_workers_share_their_metrics(model_path: Path, tmp_path: Path) -> None:
    """WORKERS=2 with PROMETHEUS_MULTIPROC_DIR: any worker's /metrics counts both."""
    folder = tmp_path / "metrics"
    folder.mkdir()
    (folder / "counter_stale.db").write_bytes(b"left over from an earlier run")
    server = LiveServer(
        {"MODEL_PATH": str(model_path), "WORKERS": "2", "PROMETHEUS_MULTIPROC_DIR": str(folder)}
    )
    try:
        server.start()
        assert not (folder / "counter_stale.db").exists()
        # Ready means one worker is; wait for the other, so that both can serve.
        deadline = time.monotonic() + 60
        while len(workers_ready(server.output())) < 2:
            assert time.monotonic() < deadline, f"one worker only:\n{server.output()}"
            time.sleep(0.1)
        with httpx.Client(base_url=server.url, timeout=10) as http:
            for _ in range(40):  # new connections: the kernel spreads them over workers
                upload = {"file": ("7.png", SEVEN, "image/png")}
                http.post("/predict", files=upload, headers={"Connection": "close"})
            metrics = samples(http.get("/metrics").text)
    finally:
        log = server.stop()
    labels = {"method": "POST", "route": "/predict", "status": "200"}
    assert value(metrics, "digits_http_requests_total", **labels) == 40
    assert predictions_by_digit(metrics) == {7: 40}
    # Each worker's process_* would describe one process only: none are exported.
    assert not [name for name, _ in metrics if name.startswith("process_")]
    assert value(metrics, "digits_http_requests_in_flight") == 1  # the scrape
    # Both workers write there (which one answers a request is the kernel's choice) ...
    assert len({path.stem.rsplit("_", 1)[1] for path in folder.glob("counter_*.db")}) == 2
    # ... and both log JSON lines, the request lines included.
    lines = [json.loads(line) for line in log.splitlines() if line.startswith("{")]
    served = [line for line in lines if line.get("route") == "/predict"]
    assert len(served) == 40 and len({line["pid"] for line in lines}) >= 3  # + the supervisor


def test_metrics_without_labels_used_yet_are_still_exported() -> None:
    text = Metrics().exposition().decode()
    assert "# TYPE digits_http_request_duration_seconds histogram" in text
    assert "# TYPE digits_batch_size histogram" in text


def buckets(metrics: dict, name: str) -> list[float]:
    """The upper bounds of a histogram's buckets, +Inf left out."""
    bounds = {
        float(dict(labels)["le"])
        for sample, labels in metrics
        if sample == f"{name}_bucket" and dict(labels).get("le") != "+Inf"
    }
    return sorted(bounds)


def test_histogram_buckets_are_the_documented_ones(fresh: TestClient, settings: Settings) -> None:
    fresh.post("/predict", files={"file": ("seven.png", SEVEN, "image/png")})
    metrics = samples(fresh.get("/metrics").text)
    # README, Metrics: request durations in buckets from 0.5 ms to 10 s.
    latency = buckets(metrics, "digits_http_request_duration_seconds")
    assert (latency[0], latency[-1]) == (0.0005, 10.0) and len(latency) >= 10
    # Every micro-batch size up to BATCH_MAX_SIZE falls in a bucket of its own scale.
    sizes = buckets(metrics, "digits_batch_size")
    assert sizes[0] == 1 and sizes[-1] >= settings.batch_max_size
    # Confidence is a probability; the answered digit's is at least a tenth.
    confidence = buckets(metrics, "digits_prediction_confidence")
    assert 0.1 <= confidence[0] and confidence[-1] < 1.0


def u_shape() -> bytes:
    """A printed U, which the network reads as a 0 at under 0.8: unsure."""
    from PIL import Image, ImageDraw

    image = Image.new("L", (100, 100), 255)
    points = [(25, 20), (25, 70), (50, 85), (75, 70), (75, 20)]
    ImageDraw.Draw(image).line(points, fill=0, width=8, joint="curve")
    return png_bytes(image)


def test_second_looks_are_counted(fresh: TestClient) -> None:
    def second_looks() -> float:
        return value(samples(fresh.get("/metrics").text), "digits_second_looks_total")

    before = second_looks()
    assert fresh.post("/predict", files={"file": ("7.png", SEVEN, "image/png")}).status_code == 200
    assert second_looks() == before  # sure: read once
    response = fresh.post(
        "/predict?reject=false", files={"file": ("u.png", u_shape(), "image/png")}
    )
    assert response.status_code == 200
    assert second_looks() == before + 1


def test_the_request_record_is_what_make_record_makes() -> None:
    fields = {"request_id": "r", "route": "/predict", "status": 200, "digit": 7}
    made = access_logger.makeRecord(
        "app.access", logging.INFO, logs.__file__, 0, "request", None, None, extra=fields
    )
    copied = logs.request_record(logging.INFO, fields)
    timed = {"created", "msecs", "relativeCreated"}
    assert set(copied.__dict__) == set(made.__dict__) | {"request_fields"}
    for name, value in made.__dict__.items():
        if name not in timed:
            assert getattr(copied, name) == value, name
    assert abs(copied.created - made.created) < 1.0
    assert copied.msecs == int((copied.created - int(copied.created)) * 1000)
    assert copied.getMessage() == "request" and copied.request_fields is fields


@pytest.mark.parametrize("seed", range(3))
def test_the_log_time_is_isoformat(seed: int) -> None:
    formatter = JsonFormatter()
    rng = np.random.default_rng(seed)
    whole = rng.integers(1_600_000_000, 1_900_000_000)
    # Whole seconds (no fraction shown), fractions that round up to the next second,
    # and any others, within a second and across seconds.
    stamps = [float(whole), whole + 0.9999996, whole + 1e-7, *(whole + rng.random(200) * 3)]
    for created in stamps:
        expected = datetime.fromtimestamp(created, tz=UTC).isoformat()
        assert formatter.iso_time(created) == expected


class CountedWrites(io.RawIOBase):
    """A byte sink that counts the writes reaching it (a file's system calls), taking
    at most ``most`` bytes a write, as a pipe may."""

    def __init__(self, most: int | None = None) -> None:
        self.writes: list[bytes] = []
        self.most = most

    def writable(self) -> bool:
        return True

    def write(self, data) -> int:
        taken = bytes(data[: self.most])
        self.writes.append(taken)
        return len(taken)


def turn_flushed() -> tuple[logs.TurnFlushedHandler, CountedWrites]:
    sink = CountedWrites()
    stream = io.TextIOWrapper(io.BufferedWriter(sink), encoding="utf-8", line_buffering=True)
    handler = logs.TurnFlushedHandler(stream)
    handler.setFormatter(logging.Formatter("%(message)s %(id)s", defaults={"id": "-"}))
    return handler, sink


def other(message: str, level: int = logging.INFO) -> logging.LogRecord:
    return logging.LogRecord("uvicorn.error", level, "", 0, message, None, None)


def test_request_lines_logged_on_the_event_loop_are_written_once_a_turn() -> None:
    handler, sink = turn_flushed()

    def request(number: int) -> None:
        handler.handle(logs.request_record(logging.INFO, {"id": f"r{number}"}))

    async def scenario() -> list[list[bytes]]:
        seen = []
        for number in range(3):
            request(number)
        seen.append(list(sink.writes))  # none written yet
        await asyncio.sleep(0)  # the loop's next turn
        seen.append(list(sink.writes))
        request(3)
        handler.handle(other("at once", logging.WARNING))  # after the line waiting
        seen.append(list(sink.writes))
        request(4)
        handler.flush()  # as at exit
        seen.append(list(sink.writes))
        return seen

    before, turned, warned, flushed = asyncio.run(scenario())
    assert before == []
    assert turned == [b"request r0\nrequest r1\nrequest r2\n"]
    assert b"".join(warned[1:]) == b"request r3\nat once -\n"
    assert flushed[-1] == b"request r4\n"
    request(5)  # no loop in this thread: written at once
    assert sink.writes[-1] == b"request r5\n"


def test_other_lines_are_written_at_once() -> None:
    handler, sink = turn_flushed()

    async def scenario() -> list[bytes]:
        handler.handle(other("started"))
        return list(sink.writes)

    assert asyncio.run(scenario()) == [b"started -\n"]


def test_new_request_ids_are_32_hex_digits_and_differ() -> None:
    ids = [new_request_id() for _ in range(10_000)]  # some start with a 0: padded
    assert all(re.fullmatch(r"[0-9a-f]{32}", rid) for rid in ids)
    assert len(set(ids)) == len(ids)


def test_an_unbuffered_stream_gets_every_byte_of_a_turn() -> None:
    """PYTHONUNBUFFERED (the image): stderr's buffer is the file, which may take part
    of a write."""
    sink = CountedWrites(most=10)
    stream = io.TextIOWrapper(sink, encoding="utf-8", write_through=True)
    handler = logs.TurnFlushedHandler(stream)
    handler.setFormatter(logging.Formatter("%(message)s %(id)s"))

    async def scenario() -> None:
        for number in range(3):
            handler.handle(logs.request_record(logging.INFO, {"id": f"r{number}"}))
        await asyncio.sleep(0)

    asyncio.run(scenario())
    assert b"".join(sink.writes) == b"request r0\nrequest r1\nrequest r2\n"
