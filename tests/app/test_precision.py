"""The int8 form of the network: chosen for the CPU, checked at startup like the float
form, and answering as the float form does."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from app import inference, precision
from model.evaluate import as_network_input

X86_FLAGS = "flags\t\t: fpu vme sse sse2 avx avx2 fma avx512f avx512bw avx512vl"
ARM_FEATURES = "Features\t: fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics"


@pytest.mark.parametrize(
    ("cpuinfo", "expected"),
    [
        (f"processor\t: 0\n{X86_FLAGS}\n", False),
        (f"processor\t: 0\n{X86_FLAGS} avx512_vnni\n", True),
        (f"{X86_FLAGS} avx_vnni\n", True),
        (f"{ARM_FEATURES}\nCPU implementer\t: 0x41\n", False),
        (f"{ARM_FEATURES} asimddp\n", True),
        ("model name\t: avx512_vnni in a name is not a flag\n", False),
        ("", False),
    ],
)
def test_an_int8_dot_product_is_read_from_cpuinfo(cpuinfo: str, expected: bool) -> None:
    assert precision.int8_dot_product(cpuinfo) is expected


def card_of(model_path: Path) -> dict:
    return json.loads((model_path.parent / inference.CARD_NAME).read_text())


def test_auto_runs_int8_only_where_it_is_faster_and_made_from_this_model(
    artifacts: Path,
) -> None:
    card, folder = card_of(artifacts), artifacts.parent
    sha256 = inference.file_sha256(artifacts)
    assert precision.choose("auto", card, sha256, folder, int8_is_faster=True) == "litert-int8"
    assert precision.choose("auto", card, sha256, folder, int8_is_faster=False) == "litert"
    assert precision.choose("auto", card, "0" * 64, folder, int8_is_faster=True) == "litert"
    for engine in ("litert", "litert-int8", "keras"):
        assert precision.choose(engine, card, sha256, folder, int8_is_faster=True) == engine
        assert precision.choose(engine, card, sha256, folder, int8_is_faster=False) == engine
    (folder / card["litert_int8"]["file"]).unlink()  # a deployment that left it out
    assert precision.choose("auto", card, sha256, folder, int8_is_faster=True) == "litert"
    assert inference.load_classifier(artifacts).engine_name == "litert"


def test_the_card_records_the_shipped_int8_model(model_path: Path) -> None:
    card = card_of(model_path)
    record = card["litert_int8"]
    shipped = model_path.parent / record["file"]
    assert record["source_sha256"] == card["sha256"] == inference.file_sha256(model_path)
    assert record["sha256"] == inference.file_sha256(shipped)
    assert record["bytes"] == shipped.stat().st_size
    assert record["probe_seed"] == inference.PROBE_SEED
    # Quantised, not the float network again: a few steps of its output from Keras.
    assert 1e-4 < record["max_abs_difference_from_keras"] < 0.1


def test_the_int8_model_is_loaded_and_checked(model_path: Path) -> None:
    classifier = inference.load_classifier(model_path, engine="litert-int8")
    assert classifier.engine_name == "litert-int8"
    difference = inference.check_shipped(classifier.engine, classifier.card, "litert_int8")
    assert difference <= inference.allowed_difference(classifier.card, "litert_int8")


def test_an_int8_file_that_is_not_the_recorded_one_is_refused(artifacts: Path) -> None:
    shipped = artifacts.with_suffix(".int8.tflite")
    shipped.write_bytes(shipped.read_bytes()[:-1] + b"\0")
    with pytest.raises(inference.ModelLoadError, match="not the file the model card records"):
        inference.load_classifier(artifacts, engine="litert-int8")


def test_int8_outputs_beyond_the_recorded_distance_from_keras_are_refused(
    artifacts: Path,
) -> None:
    card_path = artifacts.parent / inference.CARD_NAME
    card = json.loads(card_path.read_text())
    card["litert_int8"]["max_abs_difference_from_keras"] = 0.0  # as if it were float32
    card_path.write_text(json.dumps(card))
    with pytest.raises(inference.ModelLoadError, match="differs from the outputs Keras recorded"):
        inference.load_classifier(artifacts, engine="litert-int8")


def test_asking_for_int8_without_an_int8_form_is_one_clear_error(artifacts: Path) -> None:
    card_path = artifacts.parent / inference.CARD_NAME
    card = json.loads(card_path.read_text())
    del card["litert_int8"]
    card_path.write_text(json.dumps(card))
    with pytest.raises(inference.ModelLoadError, match=r"model\.quantize --ship"):
        inference.load_classifier(artifacts, engine="litert-int8")
    assert inference.load_classifier(artifacts).engine_name == "litert"


def test_the_int8_network_answers_as_the_float_one(model_path: Path, mnist) -> None:
    """On the 5,000 MNIST digits held out for validation: the same digit, the same
    refusals, probabilities close (measured: 99.96 % the same digit, 0.09 apart at most)."""
    from model.uploads import held_out_digits

    digits = held_out_digits(mnist)
    inputs = as_network_input(digits.images)
    answers = {}
    for engine in ("litert", "litert-int8"):
        classifier = inference.load_classifier(model_path, engine=engine)
        probabilities, scores = classifier.interpret(classifier.outputs(inputs))
        answers[engine] = (probabilities, scores >= classifier.reject_below)
    (p_float, read_float), (p_int8, read_int8) = answers["litert"], answers["litert-int8"]
    assert np.mean(p_float.argmax(axis=1) == p_int8.argmax(axis=1)) >= 0.999
    assert np.mean(read_float == read_int8) >= 0.999
    assert np.abs(p_float - p_int8).max() <= 0.2
    assert np.mean(p_int8.argmax(axis=1) == digits.labels) >= 0.995
