"""Hairline strokes reach the network as wide as MNIST's; other strokes unchanged."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image, ImageDraw

from app import preprocessing, strokes
from model.distort import cropped
from tests.app.handwriting import draw_digit
from tests.conftest import png_bytes


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


def blotted(digit: str, pen: int = 2) -> Image.Image:
    """A 6 or a 9 written with a fine pen, its loop filled in with ink (a blot): most of
    its ink is the blot, most of its strokes' length the hairline."""
    image = Image.new("L", (300, 300), 255)
    draw = ImageDraw.Draw(image)
    if digit == "6":
        draw.line([(190, 30), (140, 70), (110, 140), (105, 200)], fill=0, width=pen)
        draw.ellipse((115, 175, 185, 245), fill=0)
    else:
        draw.line([(195, 100), (185, 180), (160, 270)], fill=0, width=pen)
        draw.ellipse((115, 55, 185, 125), fill=0)
    return image


@pytest.mark.parametrize("digit", ["6", "9"])
def test_a_blotted_hairline_is_grown_on_a_clean_image_only(digit):
    crop = cropped(preprocessing.ink_map(preprocessing.grey_levels(blotted(digit))), level=0.0)
    scale = preprocessing.DIGIT_BOX / max(crop.shape)
    assert strokes.measured_width(crop) * scale >= strokes.HAIRLINE  # the blot's ink
    ridge = strokes.ridge_widths(crop > strokes.CORE) * scale
    assert np.median(ridge) < strokes.HAIRLINE  # the strokes' length: a hairline
    assert strokes.grown(crop, preprocessing.DIGIT_BOX) is crop  # a photo's: not grown
    fitted = preprocessing.fit_to_mnist(crop, clean=True)
    assert strokes.measured_width(fitted) >= 1.4  # the hairline as wide as MNIST's


@pytest.mark.parametrize("digit", ["6", "9"])
def test_a_blotted_hairline_digit_is_read(client, digit):
    """Refused before (digit score 0.0: a blob and a faint line at 28×28)."""
    upload = png_bytes(blotted(digit))
    response = client.post("/predict", files={"file": ("digit.png", upload, "image/png")})
    assert response.status_code == 200, response.text
    assert response.json()["digit"] == int(digit)


def test_ridge_widths_of_a_bar_and_a_line():
    bar = np.zeros((30, 60), bool)
    bar[10:15, 5:55] = True
    assert np.median(strokes.ridge_widths(bar)) == pytest.approx(5.0, abs=1.0)
    line = np.zeros((30, 60), bool)
    line[12, 5:55] = True
    assert np.all(strokes.ridge_widths(line) == 1.0)
