"""The "whole" output: /read's candidates labelled by the strokes they hold, and the head
joined after the eleven outputs without changing them."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from app import preprocessing, segmentation
from app.engines import LiteRTEngine, separated
from model import numbers, quantize, wholes
from tests.app.handwriting import draw_number


@pytest.mark.parametrize(
    ("shares", "expected"),
    [
        ([1.0], 1),  # one digit alone
        ([0.95, 0.05], 1),  # with a stub of its neighbour
        ([0.85, 0.2, 0.0], 1),  # overlapping digits share a little
        ([0.9, 0.4], 0),  # parts of two digits
        ([0.5, 0.5], 0),
        ([0.2, 0.1], 0),  # a bit of one
        ([0.6, 0.0], None),  # half a digit: often a digit itself (a 4's stem), left out
        ([0.9, 0.25], None),
    ],
)
def test_a_candidate_is_labelled_by_the_shares_it_holds(shares, expected) -> None:
    assert wholes.label(np.array(shares)) == expected


def test_a_thin_bit_is_left_out_as_a_one_would_be_taken_for_it() -> None:
    bar = np.zeros((28, 28), np.float32)
    bar[4:24, 12:16] = 1.0  # what a 1, or a sliver of a 0, normalises to
    ring = np.zeros((28, 28), np.float32)
    ring[4:24, 8:20] = 1.0
    assert wholes.thin(bar) and not wholes.thin(ring) and not wholes.thin(bar * 0)
    assert wholes.label(np.array([0.2, 0.0]), thin=True) is None
    assert wholes.label(np.array([0.2, 0.0]), thin=False) == 0
    assert wholes.label(np.array([0.5, 0.5]), thin=True) == 0  # two digits' parts: still not
    assert wholes.label(np.array([1.0, 0.0]), thin=True) == 1


def test_each_pixel_belongs_to_the_digit_inked_most_there() -> None:
    first = np.zeros((4, 4), np.float32)
    first[:, :3] = 0.8
    second = np.zeros((4, 4), np.float32)
    second[:, 1:] = 0.5
    faint = np.full((2, 2), 0.2, np.float32)  # under OWNED: nobody's
    owner = wholes.owners((6, 8), [(1, 1, first), (1, 2, second), (4, 6, faint)])
    expected = np.full((6, 8), -1)
    expected[1:5, 1:4] = 0  # the first's ink, stronger where both are
    expected[1:5, 4:6] = 1
    assert np.array_equal(owner, expected)


def _digit(text: str) -> np.ndarray:
    """A digit drawn with a pen, white on black as MNIST stores digits."""
    image, _ = draw_number(text)
    return 255 - np.asarray(image.convert("L"))


def _labelled(text: str, spacing: str) -> tuple[bytes, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    sheet, baseline, places = numbers.placed([_digit(c) for c in text], spacing, rng)
    content = numbers.render(sheet, baseline, "scan", rng)
    return content, *wholes.labelled(content, wholes.owners(sheet.shape, places), len(text))


def test_digits_apart_are_whole_and_pieces_are_not() -> None:
    _, inputs, labels = _labelled("20", "wide")
    assert inputs.shape == (len(labels), 28, 28)
    # Whole: the 2 and the 0 (and runs of pieces that hold nearly all of one); not:
    # bits of them, which are wide enough to be cut.
    whole = {round(float(ink), 2) for ink in inputs[labels == 1].sum(axis=(1, 2))}
    assert len(whole) >= 2
    assert (labels == 0).any()


def test_touching_digits_taken_together_are_not_whole() -> None:
    content, inputs, labels = _labelled("20", "touching")
    proposal = segmentation.propose(preprocessing.open_image(content), 10)
    both = proposal.inputs[0, ..., 0]  # the first candidate: the group whole
    assert proposal.candidates[0].first == 0 and proposal.candidates[0].last > 0
    not_whole = {round(float(ink), 2) for ink in inputs[labels == 0].sum(axis=(1, 2))}
    assert round(float(both.sum()), 2) in not_whole
    assert (labels == 1).any()  # the 2 or the 0, cut apart


def test_an_overlap_slides_the_touching_digit_further_left() -> None:
    images = [_digit("0"), _digit("0")]
    _, _, touching = numbers.placed(images, "touching", np.random.default_rng(3))
    _, _, overlapping = numbers.placed(images, "touching", np.random.default_rng(3), 0.3)
    assert overlapping[1][1] < touching[1][1]
    assert overlapping[0][1] == touching[0][1]


@pytest.fixture(scope="module")
def small_models(tmp_path_factory) -> tuple[Path, Path]:
    """A tiny network of eleven outputs and the same with a head joined (saved)."""
    import keras

    keras.utils.set_random_seed(0)
    inputs = keras.Input((28, 28, 1))
    features = keras.layers.Flatten()(keras.layers.Conv2D(4, 3, strides=2)(inputs))
    model = keras.Model(inputs, keras.layers.Dense(11, activation="softmax")(features))
    head = keras.Sequential(
        [keras.Input(features.shape[1:]), keras.layers.Dense(1, activation="sigmoid")]
    )
    folder = tmp_path_factory.mktemp("wholes")
    model.save(folder / "eleven.keras")
    wholes.attach(model, head).save(folder / "twelve.keras")
    return folder / "eleven.keras", folder / "twelve.keras"


def test_the_head_joins_after_the_eleven_outputs(small_models) -> None:
    import keras

    eleven, twelve = (keras.saving.load_model(path) for path in small_models)
    batch = np.random.default_rng(1).random((5, 28, 28, 1), dtype=np.float32)
    outputs = np.asarray(twelve.predict_on_batch(batch))
    assert outputs.shape == (5, 12)
    np.testing.assert_array_equal(outputs[:, :11], np.asarray(eleven.predict_on_batch(batch)))
    assert np.all((outputs[:, 11] > 0) & (outputs[:, 11] < 1))


@pytest.mark.slow
def test_litert_joins_the_outputs_and_int8_keeps_the_eleven_bit_for_bit(small_models) -> None:
    """Converted apart (``engines.separated``), the engine joins the outputs again; in
    int8 the eleven are those of the network without the head (concatenated in the
    graph, the softmax would be requantised to the joint scale)."""
    import keras
    import tensorflow as tf

    eleven, twelve = small_models
    batch = np.random.default_rng(2).random((9, 28, 28, 1), dtype=np.float32)
    model = keras.saving.load_model(twelve)
    flatbuffer = tf.lite.TFLiteConverter.from_keras_model(separated(model)).convert()
    engine = LiteRTEngine(flatbuffer)
    np.testing.assert_allclose(engine(batch), model.predict_on_batch(batch), atol=1e-5)
    assert engine(batch[:0]).shape == (0, 12)
    calibration = np.random.default_rng(3).random((20, 28, 28, 1), dtype=np.float32)
    with_head = LiteRTEngine(quantize.quantised(twelve, calibration))(batch)
    without = LiteRTEngine(quantize.quantised(eleven, calibration))(batch)
    assert with_head.shape == (9, 12)
    np.testing.assert_array_equal(with_head[:, :11], without)
