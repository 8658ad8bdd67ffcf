"""Paper and light in photos: uneven light, shadows and faint pencil, told from ink."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from app.preprocessing import NoDigitError, preprocess
from tests.app.test_preprocessing import check_mnist_layout, difference, stroke_digit
from tests.conftest import png_bytes


def lit_page(paper: np.ndarray, size: int, top: int, left: int, noise: np.ndarray) -> Image.Image:
    """A '7' of ``size`` px in dark ink at (top, left) on ``paper`` (grey levels), plus noise."""
    digit = np.asarray(stroke_digit(size, round(size * 0.08), 255, 0), dtype=np.float32) / 255
    coverage = np.zeros(paper.shape, np.float32)
    coverage[top : top + size, left : left + size] = digit
    pixels = paper * (1 - coverage) + 30 * coverage + noise
    return Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))


def distance_from_the_drawn_digit(photo: Image.Image, quality: int) -> float:
    """How far a photo of ``lit_page``'s 7, as a JPEG, reads from the 7 drawn clean."""
    result = preprocess(png_bytes(photo, "JPEG", quality=quality))
    check_mnist_layout(result)
    return difference(result, preprocess(png_bytes(stroke_digit(300, width=24))))


def test_uneven_light_and_noise_are_not_ink() -> None:
    rows, columns = np.mgrid[0:600, 0:800].astype(np.float32)
    paper = 230 - 70 * columns / 800 - 20 * rows / 600  # a lamp on the left
    noise = np.random.default_rng(0).normal(0, 5, paper.shape)
    assert distance_from_the_drawn_digit(lit_page(paper, 300, 150, 350, noise), 80) < 0.04


@pytest.mark.parametrize("seed", [1, 15, 16])
def test_a_lit_page_far_from_the_digit_is_not_ink(seed: int) -> None:
    # A phone photo: light falling across the page, sensor noise, JPEG, a smallish
    # digit somewhere. Flattening the paper leaves faint contrast everywhere; none
    # of it may count as ink, or the crop takes in the whole page.
    rng = np.random.default_rng(seed)
    rows, columns = np.mgrid[0:768, 0:1024].astype(np.float32)
    angle = rng.uniform(0, 2 * np.pi)
    paper = 225 - (np.cos(angle) * columns / 1024 + np.sin(angle) * rows / 768) * rng.uniform(
        20, 60
    )
    size = int(rng.integers(220, 400))
    top, left = int(rng.integers(0, 768 - size)), int(rng.integers(0, 1024 - size))
    photo = lit_page(paper, size, top, left, rng.normal(0, rng.uniform(2, 6), paper.shape))
    assert distance_from_the_drawn_digit(photo, int(rng.integers(70, 93))) < 0.045


def test_a_shadow_darker_than_otsus_threshold_is_paper() -> None:
    """A lamp at one corner: the far sides' paper falls below Otsu's threshold (which
    then splits the light, not ink from paper) and was taken for ink, a dark wedge."""
    rows, columns = np.mgrid[0:384, 0:512].astype(np.float32)
    paper = 215 - 90 * np.clip((columns / 512 + rows / 384) - 0.6, 0, None)
    noise = np.random.default_rng(2).normal(0, 3, paper.shape)
    assert distance_from_the_drawn_digit(lit_page(paper, 90, 30, 40, noise), 85) < 0.045


def gently_lit_paper(seed: int) -> np.ndarray:
    """Blank paper photographed with a lamp to one side: 10–40 grey levels of light
    across it, or darker corners (vignetting), and sensor noise."""
    rng = np.random.default_rng(seed)
    rows, columns = np.mgrid[0:600, 0:800].astype(np.float32) / 800
    angle, span = rng.uniform(0, 2 * np.pi), rng.uniform(10, 40)
    light = span * (np.cos(angle) * columns + np.sin(angle) * rows)
    if seed % 2:
        light = span * ((columns - 0.5) ** 2 + (rows - 0.375) ** 2) * 3
    return 200 - light + rng.normal(0, rng.uniform(1, 4), light.shape)


@pytest.mark.parametrize("seed", range(6))
def test_blank_paper_in_uneven_light_has_no_digit(seed: int) -> None:
    """Otsu splits the light, and its darker half passed for ink (read as a 5)."""
    for fmt in ("PNG", "JPEG"):
        page = Image.fromarray(np.clip(gently_lit_paper(seed), 0, 255).astype(np.uint8))
        with pytest.raises(NoDigitError, match="blank"):
            preprocess(png_bytes(page, fmt))


def test_a_faint_digit_in_uneven_light_is_read() -> None:
    paper = gently_lit_paper(0)
    digit = np.asarray(stroke_digit(240, 14, 255, 0), dtype=np.float32) / 255
    coverage = np.zeros(paper.shape, np.float32)
    coverage[200:440, 300:540] = digit
    faint = Image.fromarray(np.clip(paper - 40 * coverage, 0, 255).astype(np.uint8))
    clean = preprocess(png_bytes(stroke_digit(240, 14)))
    assert difference(preprocess(png_bytes(faint)), clean) < 0.06


@pytest.mark.parametrize("seed", [6, 47, 103, 146, 224, 225])
def test_a_pencil_digit_whose_light_spans_more_is_evened_too(seed: int) -> None:
    """``model.world``'s faint photos of a drawn 7 whose ink and light together span
    over SMOOTH_LIGHT_SPAN grey levels, and whose sides' paper does not tell uneven
    light: the darker part of the page was kept as ink (a wedge beside the 7)."""
    from model import world

    seven = np.asarray(stroke_digit(112, 16, 255, 0).resize((28, 28), Image.Resampling.BOX))
    photo = world.faint_photo(seven, np.random.default_rng(seed))
    clean = preprocess(png_bytes(stroke_digit(240, 14)))
    assert difference(preprocess(png_bytes(Image.fromarray(photo))), clean) < 0.08


@pytest.mark.parametrize("seed", [3, 164, 241, 353])
def test_a_faint_heavy_digit_is_not_taken_for_noise(seed: int) -> None:
    """``model.world``'s faint photos of a heavy 7 (its strokes a sixth of its size,
    blurred by the enlargement): after the light is evened, the 7 lies some 30 grey
    levels under the paper, but its wide soft edges widen the spread the noise floor
    is measured by, and it was refused as blank. Thousands of pixels lie past that
    floor, which noise does not put there."""
    from model import world

    seven = np.asarray(stroke_digit(112, 36, 255, 0).resize((28, 28), Image.Resampling.BOX))
    photo = world.faint_photo(seven, np.random.default_rng(seed))
    clean = preprocess(png_bytes(stroke_digit(240, 14)))
    assert difference(preprocess(png_bytes(Image.fromarray(photo))), clean) < 0.1


def test_a_grey_marker_digit_cropped_tight_keeps_its_strokes() -> None:
    """A crop that is mostly ink spans as few grey levels as a faint photo, but its
    paper does not fit a smooth light: it is not evened (evening took the strokes
    for light, and the crop was refused as blank)."""
    digit = np.asarray(stroke_digit(120, 22, 255, 0), dtype=np.float32) / 255
    rows, columns = np.nonzero(digit > 0.5)
    crop = digit[rows.min() : rows.max() + 1, columns.min() : columns.max() + 1]
    grey = 200 - 100 * crop + np.random.default_rng(0).normal(0, 2, crop.shape)
    heavy = preprocess(png_bytes(Image.fromarray(np.clip(grey, 0, 255).astype(np.uint8))))
    clean = preprocess(png_bytes(Image.fromarray((255 - 255 * crop).astype(np.uint8))))
    assert difference(heavy, clean) < 0.06


@pytest.mark.parametrize("resample", [Image.Resampling.NEAREST, Image.Resampling.BILINEAR])
def test_a_bitmaps_1_enlarged_is_a_bar_not_its_outline(resample: Image.Resampling) -> None:
    """A 1 box-normalised to 16×16 is a solid bar across most of its box, its grey
    edges stretched as wide; enlarged 4×, its sides differ like uneven light. The
    per-pixel paper, whose window is narrower than the bar, took the bar in, and only
    its outline was ink (read as no digit); such a paper is not taken."""
    bitmap = np.full((16, 16), 255, np.uint8)
    bitmap[1:, 4:12] = 0  # the stem, stretched to fill its box
    bitmap[2:13, :4] = 80  # its anti-aliased left edge, stretched as wide
    bitmap[:9, 12:] = 210  # the right edge, lighter, all down the side
    bitmap[9:, 12:] = 80  # and the foot's
    enlarged = Image.fromarray(bitmap).resize((64, 64), resample)
    seen = preprocess(png_bytes(enlarged))[..., 0]
    rows, columns = np.nonzero(seen > 0.5)
    box = seen[rows.min() : rows.max() + 1, columns.min() : columns.max() + 1]
    assert (box > 0.5).mean() > 0.6  # a bar (0.78), not an outline (0.26-0.31)
