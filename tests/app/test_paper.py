"""app.paper: which of the two classes is paper, and its noise floor."""

from __future__ import annotations

import numpy as np
import pytest

from app import paper


def frame_filling_square(dark_ink: bool) -> np.ndarray:
    """A heavy square 0 filling a 16×16 box: ink on 80 % of the border, paper in
    the four 2×2 corners and the hole."""
    ink = np.ones((16, 16), dtype=bool)
    ink[5:11, 5:11] = False  # the hole
    for rows in (slice(0, 2), slice(-2, None)):
        for columns in (slice(0, 2), slice(-2, None)):
            ink[rows, columns] = False
    return np.where(ink == dark_ink, 20.0, 235.0).astype(np.float32)


def side(grey: np.ndarray, paper_dark: bool | None = None) -> paper.Paper:
    return paper.side(np.sort(grey, axis=None), paper.ring(grey, 0), grey, paper_dark)


@pytest.mark.parametrize("dark_ink", [True, False])
def test_the_corners_overrule_a_border_the_ink_covers(dark_ink: bool) -> None:
    grey = frame_filling_square(dark_ink)
    border = paper.ring(grey, 0)
    assert ((border < 128) == dark_ink).mean() >= paper.BORDER_MAJORITY  # the border says ink
    found = side(grey)
    assert found.dark is not dark_ink and found.sure
    assert np.all(found.shades == (20.0 if found.dark else 235.0))


@pytest.mark.parametrize("dark_ink", [True, False])
def test_corners_have_no_say_where_no_ink_touches_the_border(dark_ink: bool) -> None:
    """One level all round (as ``app.fast_path`` takes it), the image's larger class:
    the border decides, even with ink in most of each corner square just inside it."""
    grey = np.full((100, 100), 235.0 if dark_ink else 20.0, dtype=np.float32)
    grey[1:-1, 1:-1] = 20.0 if dark_ink else 235.0  # ink up to the border, not on it
    grey[15:85, 15:85] = 235.0 if dark_ink else 20.0
    assert (paper.corners_dark(grey, 128.0) >= paper.BORDER_MAJORITY) == dark_ink
    assert side(grey).dark is not dark_ink


def test_a_per_pixel_paper_at_the_inks_level_took_in_strokes() -> None:
    """More than halfway from Otsu's threshold to the ink, either polarity; never when
    the ink is not past the threshold at all (no division by nothing)."""
    took_in_strokes = paper.took_in_strokes
    backdrop = np.full((4, 4), 100.0)
    assert not took_in_strokes(backdrop, False, 150.0, 20.0)  # 50 of 130: light that varies
    assert took_in_strokes(backdrop - 70.0, False, 150.0, 20.0)  # 120 of 130: a stroke
    assert took_in_strokes(backdrop + 130.0, True, 100.0, 240.0)  # light ink, 130 of 140
    assert not took_in_strokes(backdrop, False, 50.0, 50.0)


@pytest.mark.parametrize("dark_ink", [True, False])
def test_a_heavy_digit_within_a_thin_margin_is_no_frame(dark_ink: bool) -> None:
    """A heavy 0 filling the image but for a pixel of paper all round: the rings just
    inside the border are mostly ink, as a frame's inside is paper, but the corners
    are paper (``paper.inside_frame``): the border still decides."""
    rows, columns = np.mgrid[0:60, 0:60]
    distance = np.minimum(rows, 59 - rows) + np.minimum(columns, 59 - columns)
    ink = (np.minimum(rows, 59 - rows) >= 1) & (np.minimum(columns, 59 - columns) >= 1)
    ink &= distance >= 8  # the corners cut off
    ink[20:40, 20:40] = False  # the hole
    grey = np.where(ink == dark_ink, 20.0, 235.0).astype(np.float32)
    assert ((paper.ring(grey, 1) < 128) == dark_ink).mean() >= paper.BORDER_MAJORITY
    assert side(grey).dark is not dark_ink


def test_a_small_box_normalised_digit_has_no_frame() -> None:
    """A 16×16 digit's strokes run along its edges a pixel in: no frame there."""
    grey = np.full((16, 16), 235.0, dtype=np.float32)
    grey[1:-1, 1:-1] = 20.0  # a heavy block of ink a pixel inside the border
    grey[6:10, 6:10] = 235.0
    assert paper.frame_depth(grey.shape) == 0
    assert paper.inside_frame(grey, 128.0, border_dark=False) is None
    assert paper.frame_depth((32, 40)) >= 3


def stretched_band() -> np.ndarray:
    """A heavy leaning stroke stretched to fill 16×16 (a box-normalised 1): ink on
    about half the border and on two of the four corners, and on most of the image."""
    rows, columns = np.mgrid[0:16, 0:16]
    ink = np.abs(0.8 * (rows - 7.5) + (columns - 7.5)) <= 5
    return np.where(ink, 20.0, 235.0).astype(np.float32)


def test_neither_border_nor_corners_leave_the_paper_in_doubt() -> None:
    grey = stretched_band()
    assert 0.25 < paper.corners_dark(grey, 128.0) < 0.75 and (grey < 128).mean() > 0.5
    found = side(grey)
    assert not found.sure and found.dark  # the larger class taken for paper: the ink
    other = side(grey, paper_dark=False)  # read the other way round, as the caller asks
    assert not other.dark and not other.sure and np.all(other.shades == 235.0)
    assert found.threshold == other.threshold


def test_a_paper_the_border_shows_is_sure() -> None:
    grey = frame_filling_square(dark_ink=True)
    assert side(grey).sure and side(np.pad(stretched_band(), 2, constant_values=235.0)).sure


def test_the_noise_floor_of_a_photo_mostly_ink_is_the_papers() -> None:
    """A heavy digit cropped close from a page in uneven light (an old register): its
    strokes, faded to every level, cover 45 % of the image. Counted with the paper's
    noise, they raised the floor past most of them (35 against 15 in ink units here),
    and such a digit was refused as too faint."""
    rng = np.random.default_rng(0)
    grey = 200.0 + rng.normal(0.0, 3.0, (60, 60))
    grey[:, :27] = rng.uniform(60.0, 185.0, (60, 27))
    grey = np.clip(np.rint(grey), 0, 255).astype(np.float32)
    ordered = np.sort(grey, axis=None)
    found = paper.side(ordered, paper.ring(grey, 0), grey)
    assert not found.dark and found.share < paper.MOSTLY_PAPER
    backdrop = np.full(grey.shape, 200.0, dtype=np.float32)
    *_, floor = paper.contrast(grey, ordered, 200.0, found, backdrop)
    paper_noise = 3.0 * 255.0 / 200.0  # a standard deviation, in ink units
    assert floor <= 4.0 * paper_noise
