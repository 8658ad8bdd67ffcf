"""The model the service ships: its card tells the truth, and it is as good as promised."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from app.inference import TOLERANCE, load_classifier, probe_batch
from model import data, evaluate, uploads

REQUIRED_ACCURACY = 0.996
MAX_FILE_BYTES = 5 * 1024 * 1024


@pytest.fixture(scope="module")
def card(model_path: Path) -> dict:
    return json.loads((model_path.parent / "model_card.json").read_text())


def test_card_describes_the_shipped_file(model_path: Path, card: dict) -> None:
    assert card["file"] == model_path.name
    assert card["sha256"] == data.sha256_of(model_path)
    assert card["file_bytes"] == model_path.stat().st_size <= MAX_FILE_BYTES
    assert card["data"]["sha256"] == data.CHECKSUMS
    assert card["test"]["accuracy"] >= REQUIRED_ACCURACY
    images = card["training"]["images"]
    assert images["MNIST training split"] + card["training"]["validation_split"] == 60000
    assert "model.train" in card["training"]["command"]


def test_the_uploads_measure_reads_digits_the_shipped_model_never_trained_on(
    card: dict, mnist: data.Mnist
) -> None:
    training, validation = data.train_validation_split(
        mnist.train, card["training"]["validation_split"], card["training"]["seed"]
    )
    held_out = uploads.held_out_digits(mnist)
    assert np.array_equal(held_out.images, validation.images)
    trained_on = {image.tobytes() for image in training.images}
    assert not any(image.tobytes() in trained_on for image in held_out.images)


@pytest.mark.slow
def test_accuracy_on_the_test_set_with_keras(
    model_path: Path, card: dict, mnist: data.Mnist
) -> None:
    import keras

    model = keras.saving.load_model(model_path, compile=False)
    result = evaluate.evaluate(model, mnist.test)
    assert result["accuracy"] >= REQUIRED_ACCURACY
    assert result["accuracy"] == pytest.approx(card["test"]["accuracy"], abs=1e-4)


@pytest.mark.slow
def test_served_engine_agrees_with_keras_on_the_test_set(
    model_path: Path, card: dict, mnist: data.Mnist, tmp_path: Path
) -> None:
    classifier = load_classifier(model_path, engine="litert", cache_dir=tmp_path)
    probabilities = classifier.predict(evaluate.as_network_input(mnist.test.images))
    result = evaluate.metrics(probabilities, mnist.test.labels.astype(np.int64))
    assert result["accuracy"] >= REQUIRED_ACCURACY
    assert result["confusion_matrix"] == card["test"]["confusion_matrix"]


@pytest.mark.slow
def test_the_int8_network_keeps_the_accuracy_its_card_records(
    model_path: Path, card: dict, mnist: data.Mnist
) -> None:
    classifier = load_classifier(model_path, engine="litert-int8")
    probabilities = classifier.predict(evaluate.as_network_input(mnist.test.images))
    accuracy = float(np.mean(probabilities.argmax(axis=1) == mnist.test.labels))
    assert accuracy >= REQUIRED_ACCURACY
    assert accuracy == pytest.approx(card["litert_int8"]["test"]["accuracy"], abs=1e-4)


@pytest.mark.slow
def test_the_recorded_probe_outputs_are_what_keras_computes(model_path: Path, card: dict) -> None:
    """What the service checks the shipped LiteRT file against at startup."""
    import keras

    model = keras.saving.load_model(model_path, compile=False)
    expected = np.asarray(model.predict_on_batch(probe_batch()))
    recorded = np.asarray(card["litert"]["probe"]["keras_outputs"])
    np.testing.assert_allclose(recorded, expected, rtol=0, atol=TOLERANCE)


@pytest.mark.parametrize(
    ("training", "warned"),
    [({"seed": 2}, True), ({"seed": 2, "split_seed": 1}, False), ({"seed": 1}, False)],
)
def test_the_measures_warn_when_the_model_held_out_other_digits(
    training: dict,
    warned: bool,
    mnist: data.Mnist,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from app.config import get_settings

    (tmp_path / "digitnet.keras").write_bytes(b"the model the card describes")
    (tmp_path / "model_card.json").write_text(json.dumps({"training": training}))
    monkeypatch.setenv("MODEL_PATH", str(tmp_path / "digitnet.keras"))
    get_settings.cache_clear()
    try:
        uploads.held_out_digits(mnist)
    finally:
        get_settings.cache_clear()
    error = capsys.readouterr().err
    assert ("some measured here are its training digits" in error) is warned
