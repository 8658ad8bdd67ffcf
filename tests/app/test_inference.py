"""The shipped LiteRT model, checked against what Keras recorded, and serving without
TensorFlow: what works there, and the one clear error for what does not."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import httpx
import numpy as np
import pytest

from app import inference
from tests.conftest import AUTO_ENGINE, PROJECT_ROOT, LiveServer, png_bytes

# Run in a child Python, this makes `import tensorflow` and `import keras` fail as
# they do where neither is installed (and their children inherit it).
BLOCK_TRAINING_FRAMEWORK = """\
import sys
sys.modules["tensorflow"] = None
sys.modules["keras"] = None
"""


@pytest.fixture
def without_tensorflow(tmp_path: Path) -> dict[str, str]:
    """What a child process's environment adds to run without TensorFlow or Keras
    (only that: ``make test`` exports HOST and PORT, which a server must not inherit
    over its own)."""
    folder = tmp_path / "no-tensorflow"
    folder.mkdir()
    (folder / "sitecustomize.py").write_text(BLOCK_TRAINING_FRAMEWORK)
    path = os.pathsep.join(filter(None, [str(folder), os.environ.get("PYTHONPATH")]))
    return {"PYTHONPATH": path}


def start(env: dict[str, str], **settings: str) -> subprocess.CompletedProcess[str]:
    """`python -m app` expected to stop before serving."""
    return subprocess.run(
        [sys.executable, "-m", "app"],
        cwd=PROJECT_ROOT,
        env={**os.environ, **env, "PORT": "1", **settings},  # never reached: it must stop first
        capture_output=True,
        text=True,
        timeout=120,
    )


def critical_lines(result: subprocess.CompletedProcess[str]) -> list[str]:
    lines = [json.loads(line) for line in result.stderr.splitlines() if line.startswith("{")]
    return [line["message"] for line in lines if line["level"] == "CRITICAL"]


def test_the_card_records_the_shipped_litert_model(model_path: Path) -> None:
    card = json.loads((model_path.parent / inference.CARD_NAME).read_text())
    record = card["litert"]
    shipped = model_path.parent / record["file"]
    assert record["source_sha256"] == card["sha256"] == inference.file_sha256(model_path)
    assert record["sha256"] == inference.file_sha256(shipped)
    assert record["bytes"] == shipped.stat().st_size
    assert record["probe"]["seed"] == inference.PROBE_SEED
    outputs = np.asarray(record["probe"]["keras_outputs"])
    assert outputs.shape[0] == len(inference.probe_batch())
    softmax, whole = outputs[:, :11], outputs[:, 11:]  # and the "whole" output after them
    np.testing.assert_allclose(softmax.sum(axis=1), 1.0, atol=1e-5)
    assert whole.shape[1] == 1 and np.all((whole >= 0) & (whole <= 1))


def test_the_shipped_model_is_served_without_converting(model_path: Path, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    classifier = inference.load_classifier(model_path, engine="litert", cache_dir=cache)
    assert classifier.engine_name == "litert"
    assert not cache.exists() or not any(cache.iterdir()), "nothing converted, nothing cached"
    card = classifier.card
    assert inference.check_shipped(classifier.engine, card) <= inference.TOLERANCE


def test_a_shipped_file_that_is_not_the_recorded_one_is_refused(artifacts: Path) -> None:
    shipped = artifacts.with_suffix(".tflite")
    shipped.write_bytes(shipped.read_bytes()[:-1] + b"\0")
    with pytest.raises(inference.ModelLoadError, match="not the file the model card records"):
        inference.load_classifier(artifacts, engine="litert")


def test_outputs_that_differ_from_what_keras_recorded_are_refused(artifacts: Path) -> None:
    card_path = artifacts.parent / inference.CARD_NAME
    card = json.loads(card_path.read_text())
    card["litert"]["probe"]["keras_outputs"][3][0] += 1e-4
    card_path.write_text(json.dumps(card))
    with pytest.raises(inference.ModelLoadError, match="differs from the outputs Keras recorded"):
        inference.load_classifier(artifacts, engine="litert")


def test_a_record_for_another_source_file_is_not_used(artifacts: Path) -> None:
    card = json.loads((artifacts.parent / inference.CARD_NAME).read_text())
    sha256 = inference.file_sha256(artifacts)
    assert inference.shipped_litert(artifacts, sha256, card) is not None
    card["litert"]["source_sha256"] = "0" * 64
    assert inference.shipped_litert(artifacts, sha256, card) is None


def test_convert_refuses_a_card_that_describes_another_model(artifacts: Path) -> None:
    card_path = artifacts.parent / inference.CARD_NAME
    card = json.loads(card_path.read_text())
    card["sha256"] = "0" * 64
    card_path.write_text(json.dumps(card))
    with pytest.raises(inference.ModelLoadError, match="describes another model file"):
        inference.ship(artifacts)


@pytest.mark.slow
def test_serves_without_tensorflow(without_tensorflow: dict[str, str], model_path: Path) -> None:
    server = LiveServer({**without_tensorflow, "MODEL_PATH": str(model_path)}).start()
    try:
        one = np.zeros((28, 28), dtype=np.uint8)
        one[4:24, 12:16] = 255
        response = httpx.post(
            f"{server.url}/predict", files={"file": ("one.png", png_bytes(one))}, timeout=10
        )
        assert response.status_code == 200, response.text
        assert response.json()["digit"] == 1
        assert httpx.get(f"{server.url}/model", timeout=5).json()["engine"] == AUTO_ENGINE
    finally:
        output = server.stop()
    assert "converting" not in output


def test_the_keras_engine_without_tensorflow_is_one_clear_error(
    without_tensorflow: dict[str, str], model_path: Path
) -> None:
    result = start(without_tensorflow, MODEL_PATH=str(model_path), INFERENCE_ENGINE="keras")
    assert result.returncode == 2, result.stderr
    assert critical_lines(result) == [
        f"cannot start: INFERENCE_ENGINE=keras needs {inference.TRAINING_FRAMEWORK}"
    ]
    assert "Traceback" not in result.stderr


def test_a_model_without_its_litert_form_without_tensorflow_is_one_clear_error(
    without_tensorflow: dict[str, str], model_path: Path, tmp_path: Path
) -> None:
    mounted = tmp_path / "mounted" / "mine.keras"
    mounted.parent.mkdir()
    shutil.copy2(model_path, mounted)  # no card, no .tflite beside it
    result = start(without_tensorflow, MODEL_PATH=str(mounted))
    assert result.returncode == 2, result.stderr
    (message,) = critical_lines(result)
    assert message.startswith(f"cannot start: {mounted} has no LiteRT form shipped beside it")
    assert f"python -m app.inference convert {mounted}" in message
    assert message.endswith(f"needs {inference.TRAINING_FRAMEWORK}")
    assert "Traceback" not in result.stderr


def test_convert_without_tensorflow_says_what_to_install(
    without_tensorflow: dict[str, str], artifacts: Path
) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "app.inference", "convert", str(artifacts)],
        cwd=PROJECT_ROOT,
        env={**os.environ, **without_tensorflow},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1
    assert result.stderr.strip() == (
        f"error: converting {artifacts} to LiteRT needs {inference.TRAINING_FRAMEWORK}"
    )
