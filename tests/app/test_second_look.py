"""The second look at inputs the network is unsure of (``app.second_look``)."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageFont

from app import calibration, second_look
from app.preprocessing import PreprocessingError, preprocess
from model import world
from tests.conftest import fonts, png_bytes


def bar() -> np.ndarray:
    image = np.zeros((28, 28), dtype=np.float32)
    image[6:22, 14] = 1.0
    return image


def ink_at(image: np.ndarray) -> np.ndarray:
    return np.argwhere(image > 0.4)


def test_a_view_moves_turns_and_scales_about_the_middle():
    moved = ink_at(second_look.view(bar(), 0.0, 1.0, 1, 1))
    assert moved.min(axis=0).tolist() == [7, 15] and moved.max(axis=0).tolist() == [22, 15]
    turned = ink_at(second_look.view(bar(), 8.0, 1.0, 0, 0))
    top, bottom = turned[turned[:, 0].argmin()], turned[turned[:, 0].argmax()]
    assert top[1] < 14 < bottom[1]  # anticlockwise: the top goes left
    grown = ink_at(second_look.view(bar(), 0.0, 1.15, 0, 0))
    assert grown[:, 0].min() < 6 and grown[:, 0].max() > 21
    assert np.array_equal(second_look.view(bar(), 0.0, 1.0, 0, 0), bar())


def outputs_for(*rows: list[float]) -> np.ndarray:
    return np.array(rows, dtype=np.float32)


def test_only_the_unsure_are_looked_at_again_in_one_call():
    sure = [0.97] + [0.002] * 9 + [0.012]
    unsure = [0.4, 0.35] + [0.02] * 8 + [0.09]
    first = outputs_for(sure, unsure, sure)
    inputs = np.stack([bar()[..., np.newaxis]] * 3)
    calls = []

    def run(views: np.ndarray) -> np.ndarray:
        calls.append(views.shape)
        return np.tile(outputs_for([0.1, 0.8] + [0.01] * 8 + [0.02]), (len(views), 1))

    looked = second_look.outputs(inputs, first, run, temperature=1.0)
    assert calls == [(len(second_look.VARIANTS), 28, 28, 1)]
    assert np.array_equal(looked[[0, 2]], first[[0, 2]])
    probabilities, scores = (
        calibration.digit_probabilities(looked, 1.0),
        calibration.digit_score(looked),
    )
    assert probabilities[1].argmax() == 1  # five views of a 1 outvote one unsure 0
    assert scores[1] == pytest.approx(0.91)  # the least of the six


def test_combined_is_the_sharpened_geometric_mean_of_the_readings_and_the_least_score():
    rng = np.random.default_rng(0)
    readings = rng.dirichlet(np.ones(11), size=6).astype(np.float32)
    one = second_look.combined(readings)
    temperature = 1.3
    calibrated = calibration.digit_probabilities(readings, temperature)
    expected = np.exp(second_look.SHARPEN * np.log(calibrated).mean(axis=0))
    got = calibration.digit_probabilities(one[np.newaxis], temperature)[0]
    np.testing.assert_allclose(got, expected / expected.sum(), rtol=1e-4)
    assert calibration.digit_score(one[np.newaxis])[0] == pytest.approx(
        calibration.digit_score(readings).min(), abs=1e-6
    )


def test_combined_keeps_a_whole_output_as_the_readings_mean():
    rng = np.random.default_rng(1)
    eleven = rng.dirichlet(np.ones(11), size=4).astype(np.float32)
    whole = np.array([[0.2], [0.4], [0.6], [1.0]], dtype=np.float32)
    one = second_look.combined(np.concatenate([eleven, whole], axis=1))
    assert one.shape == (12,)
    np.testing.assert_allclose(one[:11], second_look.combined(eleven), rtol=1e-6)
    assert one[11] == pytest.approx(0.55)


def ampersand() -> bytes:
    """A printed '&' in a font kept out of training, which the network reads as a 2
    at its first look (digit score ~0.9, top probability ~0.6)."""
    font = next(path for path in fonts(training=False) if path.name == "Carlito-Regular.ttf")
    image = Image.new("L", (96, 96), 255)
    ImageDraw.Draw(image).text(
        (48, 48), "&", fill=0, font=ImageFont.truetype(str(font), 64), anchor="mm"
    )
    return png_bytes(image)


def test_a_symbol_the_first_look_would_answer_is_refused(client, model_path):
    from app.inference import load_configured

    classifier = load_configured()
    network_input = preprocess(ampersand())[np.newaxis]
    first = classifier.outputs(network_input)
    assert calibration.digit_score(first)[0] >= classifier.reject_below  # answered alone
    response = client.post("/predict", files={"file": ("and.png", ampersand(), "image/png")})
    assert response.status_code == 422, response.text
    assert "letter or a symbol" in response.json()["detail"]


def test_fewer_misreadings_of_digits_unlike_mnist(mnist):
    """Box-normalised, hairline and slanted digits rendered from MNIST validation digits
    (``model.world``): the second look misreads or refuses fewer than the first."""
    from app.inference import load_configured
    from model.uploads import held_out_digits

    classifier = load_configured()
    digits = held_out_digits(mnist)
    kinds = ("16x16 binary", "hairline", "slanted")
    read, labels = [], []
    for sample in world.rendered(digits, 200, seed=3):
        if sample.kind in kinds:
            try:
                read.append(preprocess(sample.content))
            except PreprocessingError:  # refused either way
                continue
            labels.append(sample.label)
    inputs, labels = np.stack(read), np.array(labels)

    def wrong(outputs: np.ndarray) -> int:
        probabilities, scores = classifier.interpret(outputs)
        right = (probabilities.argmax(axis=1) == labels) & (scores >= classifier.reject_below)
        return int((~right).sum())

    first = classifier.outputs(inputs)
    assert wrong(second_look.read(classifier, inputs)) < wrong(first)
