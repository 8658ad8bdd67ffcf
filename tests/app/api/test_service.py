"""Health, model card, docs: what operators and users read."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from app import inference
from app.config import Settings
from app.inference import ModelLoadError, check_model_file
from app.main import create_app
from tests.app.test_preprocessing import stroke_digit
from tests.conftest import AUTO_ENGINE, png_bytes

NOT_LOADED = "The model is not loaded yet."


def test_liveness(client: TestClient) -> None:
    assert client.get("/health/live").json() == {"status": "ok"}


def test_ready_only_after_the_model_is_loaded(settings: Settings) -> None:
    app = create_app(settings)
    before = TestClient(app)  # no lifespan run: nothing loaded yet
    response = before.get("/health/ready")
    assert response.status_code == 503 and response.json()["model_loaded"] is False
    assert response.headers["retry-after"] == "1"
    for path, field in (("/predict", "file"), ("/predict/batch", "files")):
        response = before.post(path, files={field: ("a.png", b"x", "image/png")})
        assert response.status_code == 503, path
        assert response.headers["retry-after"] == "1", path
        assert response.json() == {"detail": NOT_LOADED}, path
    with TestClient(app) as started:
        response = started.get("/health/ready")
        assert response.status_code == 200
        assert response.json()["model_loaded"] is True
    assert before.get("/health/ready").status_code == 503  # and again after shutdown


def test_model_endpoint_serves_the_card(client: TestClient, model_path: Path) -> None:
    body = client.get("/model").json()
    card = json.loads((model_path.parent / "model_card.json").read_text())
    assert body["input_shape"] == [28, 28, 1]
    assert body["classes"] == list(range(10))
    assert body["version"] == card["version"]
    assert body["test_accuracy"] == card["test"]["accuracy"]
    assert body["engine"] == AUTO_ENGINE
    assert body["card"]["sha256"] == body["sha256"]
    pair_card = json.loads((model_path.parent / "pairnet_card.json").read_text())
    assert body["pair_reader"]["sha256"] == pair_card["sha256"]


def test_head_answers_as_get_without_the_body(client: TestClient) -> None:
    """curl -I and uptime monitors: HEAD gets GET's status and headers, no body."""
    for path in ("/", "/health/live", "/health/ready", "/model", "/metrics", "/docs", "/v2"):
        got, head = client.get(path), client.head(path)
        assert head.status_code == got.status_code == 200, path
        assert head.content == b"", path
        assert head.headers["content-type"] == got.headers["content-type"], path
        if path != "/metrics":  # its counters move between the two requests
            assert head.headers["content-length"] == str(len(got.content)), path
    refused = client.head("/predict")  # no GET there: 405, saying what is allowed
    assert refused.status_code == 405 and refused.headers["allow"] == "POST"
    assert client.head("/nothing").status_code == 404


def test_byte_ranges_of_the_page_and_its_files(client: TestClient) -> None:
    """A good Range gets its bytes; a bad one a JSON error, as everything else."""
    for path in ("/", "/static/app.js"):
        whole = client.get(path).content
        part = client.get(path, headers={"Range": "bytes=0-9"})
        assert part.status_code == 206 and part.content == whole[:10], path
        for bad in ("bytes=abc", "items=0-9", "bytes=9-2"):
            refused = client.get(path, headers={"Range": bad})
            assert refused.status_code == 400, (path, bad)
            assert refused.json()["detail"].startswith("Bad Range header: "), (path, bad)
        past = client.get(path, headers={"Range": f"bytes={len(whole)}-"})
        assert past.status_code == 416, path
        assert past.headers["content-range"] == f"bytes */{len(whole)}", path
        assert str(len(whole)) in past.json()["detail"], path
        # An If-Range naming another version: the whole file, whatever the range.
        other = client.get(path, headers={"Range": "bytes=abc", "If-Range": '"other"'})
        assert other.status_code == 200 and other.content == whole, path


def test_docs_and_redoc_load_nothing_from_other_hosts(client: TestClient) -> None:
    for path in ("/docs", "/redoc"):
        page = client.get(path)
        assert page.status_code == 200
        urls = re.findall(r"""(?:src|href)\s*=\s*["']([^"']+)""", page.text)
        urls += re.findall(r"""url:\s*['"]([^'"]+)""", page.text)
        assert urls, path
        for url in urls:
            assert not re.match(r"^(https?:)?//", url), f"{path} loads {url}"
            if url.startswith("/static/"):
                assert client.get(url).status_code == 200, url


def test_openapi_documents_every_error(client: TestClient) -> None:
    schema = client.get("/openapi.json").json()
    predict = schema["paths"]["/predict"]["post"]
    assert {"200", "400", "413", "415", "422", "503"} <= set(predict["responses"])
    assert predict["description"]
    assert "/predict/batch" in schema["paths"]
    assert {"/health/live", "/health/ready", "/model"} <= set(schema["paths"])


def test_a_missing_model_stops_startup_with_one_clear_message(tmp_path: Path, caplog) -> None:
    app = create_app(Settings(model_path=tmp_path / "absent.keras"))
    with pytest.raises(ModelLoadError, match=r"absent\.keras not found"), TestClient(app):
        raise AssertionError("the app started without a model")
    messages = [r.getMessage() for r in caplog.records if r.levelname == "CRITICAL"]
    assert messages == [
        f"cannot start: model file {tmp_path / 'absent.keras'} not found (set MODEL_PATH)"
    ]


def test_a_corrupt_model_is_refused(tmp_path: Path) -> None:
    corrupt = tmp_path / "corrupt.keras"
    corrupt.write_bytes(b"PK\x03\x04 not really a zip")
    with pytest.raises(ModelLoadError, match=r"corrupt\.keras is corrupt"):
        check_model_file(corrupt)


@pytest.mark.slow
@pytest.mark.timeout(900)  # imports TensorFlow and converts: slow on a busy machine
def test_a_conversion_that_disagrees_with_keras_is_refused(
    model_path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The check ``python -m app`` runs (in a child) before it serves a new model:
    a converted model answering 3e-5 off Keras is refused, and not cached. The
    refusal then stops startup with one line, as any ModelLoadError does (above)."""
    answer = inference.LiteRTEngine.__call__
    monkeypatch.setattr(
        inference.LiteRTEngine,
        "__call__",
        lambda engine, batch: answer(engine, batch) + 3 * inference.TOLERANCE,
    )
    converted = tmp_path / "digitnet.tflite"
    expected = (
        rf"LiteRT differs from Keras by [23]\.\d\de-05 \(> {inference.TOLERANCE}\); "
        "set INFERENCE_ENGINE=keras"
    )
    with pytest.raises(ModelLoadError, match=expected):
        inference.convert(model_path, converted)
    assert not list(tmp_path.iterdir()), "a disagreeing conversion was kept"


@pytest.mark.slow
def test_the_keras_engine_serves(model_path: Path) -> None:
    with TestClient(create_app(Settings(model_path=model_path, inference_engine="keras"))) as app:
        assert app.get("/model").json()["engine"] == "keras"
        seven = png_bytes(stroke_digit())
        response = app.post("/predict", files={"file": ("7.png", seven, "image/png")})
        assert response.status_code == 200 and response.json()["digit"] == 7
