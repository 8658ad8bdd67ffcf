"""Hairline strokes reach the network as wide as MNIST's; other strokes unchanged."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image, ImageDraw

from app import preprocessing, strokes
from model.distort import cropped
from tests.app.handwriting import draw_digit


def drawn(digit: str, size: int, pen: int) -> Image.Image:
    image = Image.new("L", (size + 80, size + 80), 255)
    draw_digit(ImageDraw.Draw(image), digit, 40, 40, size, pen)
    return image


def fitted_width(network_input: np.ndarray) -> float:
    """The stroke width of a 28×28 input, in the units of ``strokes.measured_width``."""
    return strokes.measured_width(network_input.reshape(28, 28))


@pytest.mark.parametrize("width", [1, 2, 4, 7])
def test_measured_width_of_a_bar_is_its_width(width):
    bar = np.zeros((40, 200), np.float32)
    bar[10 : 10 + width, 5:195] = 1.0
    assert strokes.measured_width(bar) == pytest.approx(width, rel=0.1)


@pytest.mark.parametrize("seed", range(20))
def test_the_outline_is_every_change_along_rows_and_columns(seed):
    """The outline counted from the cores and their neighbours is the number of
    changes between core and no core along rows and columns, the frame no core."""
    rng = np.random.default_rng(seed)
    crop = rng.random(tuple(rng.integers(1, 30, 2))).astype(np.float32)
    padded = np.pad(crop > strokes.CORE, 1)
    changes = np.count_nonzero(np.diff(padded, axis=0)) + np.count_nonzero(np.diff(padded, axis=1))
    assert strokes.measured_width(crop) == 2.0 * float(crop.sum()) / max(changes, 1)


@pytest.mark.parametrize("digit", ["2", "3", "4", "7"])
def test_a_hairline_digit_reaches_the_network_as_wide_as_mnist(digit):
    # A one-pixel pen on a 300 px digit: without growing it is a faint line about
    # a fifth of a pixel wide at 28×28 (measured 0.2-0.3); MNIST's digits measure 0.9-3.
    network_input = preprocessing.normalize_digit(drawn(digit, 300, pen=1))
    assert 1.4 <= fitted_width(network_input) <= 3.0
    assert network_input.max() == pytest.approx(1.0, abs=0.02)
    rows = np.flatnonzero(network_input.any(axis=(1, 2)))
    assert 18 <= rows[-1] - rows[0] + 1 <= 22  # the fit's 20 px, grown strokes and all


@pytest.mark.parametrize(("size", "pen"), [(60, 6), (200, 18), (300, 40)])
def test_strokes_of_a_usual_width_are_not_touched(size, pen):
    image = drawn("3", size, pen)
    crop = cropped(preprocessing.ink_map(preprocessing.grey_levels(image)), level=0.0)
    assert strokes.grown(crop, preprocessing.DIGIT_BOX) is crop


def test_a_small_thin_digit_is_not_grown():
    # One pixel at 16 px is already more than a pixel once fitted to 20.
    crop = np.zeros((16, 10), np.float32)
    crop[:, 5] = 1.0
    crop[0, :] = 1.0
    assert strokes.grown(crop, preprocessing.DIGIT_BOX) is crop


def test_fine_stripes_are_not_grown_into_strokes():
    # Thin at the fit's scale like a hairline, but far longer than a digit's strokes:
    # growing them would fill the box with ink a network could take for a digit.
    stripes = np.zeros((160, 160), np.float32)
    stripes[:, ::8] = 1.0
    assert strokes.measured_width(stripes) * preprocessing.DIGIT_BOX / 160 < strokes.HAIRLINE
    assert strokes.grown(stripes, preprocessing.DIGIT_BOX) is stripes
