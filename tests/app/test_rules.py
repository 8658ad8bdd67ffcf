"""app.rules: printed lines under and around one digit are erased, its own strokes kept."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image, ImageDraw

from app import fast_path, ink_blobs, paper, preprocessing, rules
from tests.conftest import png_bytes

PEN = 9
FOUR = [((60, 30), (40, 95), (100, 95)), ((85, 55), (85, 130))]  # a 4 in two strokes
LEFT_FOUR = [[(x - 30, y) for x, y in stroke] for stroke in FOUR]


def sheet(
    size: tuple[int, int] = (150, 160),
    strokes=FOUR,
    pen: int = PEN,
    rows: tuple[int, ...] = (),
    columns: tuple[int, ...] = (),
    box: tuple[int, int, int, int] | None = None,
    line: int = 1,
    level: float = 170.0,
    tilt: int = 0,
) -> tuple[np.ndarray, np.ndarray]:
    """Grey levels of dark ``strokes`` over printed lines ``line`` px wide at
    ``level`` (full ``rows`` and ``columns``, or a ``box``; drifting ``tilt`` px
    across the image as the page is turned) on white paper, and the mask of the
    strokes alone."""
    width, height = size
    printed, written = Image.new("L", size, 0), Image.new("L", size, 0)
    draw = ImageDraw.Draw(printed)
    for row in rows:
        draw.line([(0, row), (width, row + tilt)], fill=255, width=line)
    for column in columns:
        draw.line([(column + tilt, 0), (column, height)], fill=255, width=line)
    if box is not None and not tilt:
        draw.rectangle(box, outline=255, width=line)
    elif box is not None:
        left, top, right, bottom = box
        slope, middle = tilt / width, np.array([(left + right) / 2, (top + bottom) / 2])
        corners = np.array([(left, top), (right, top), (right, bottom), (left, bottom)] * 2)
        turned = (corners[:5] - middle) @ np.array([[1, slope], [-slope, 1]]) + middle
        draw.line([tuple(corner) for corner in turned], fill=255, width=line, joint="curve")
    for stroke in strokes:
        ImageDraw.Draw(written).line(stroke, fill=255, width=pen, joint="curve")
    lines, ink = (np.asarray(image) > 127 for image in (printed, written))
    grey = np.where(lines, level, 245.0)
    return np.where(ink, 30.0, grey).astype(np.float32), ink


def erased(grey: np.ndarray) -> np.ndarray | None:
    strength = preprocessing.ink_strength(grey)
    return rules.across(strength.ink, strength.strokes)


@pytest.mark.parametrize(
    "lines",
    [
        {"rows": (20, 60, 100, 140)},  # ruled paper
        {"rows": (20, 60, 100, 140), "tilt": 2},  # ... on a page a little askew
        {"rows": (15, 45, 75, 105, 135), "columns": (10, 40, 70, 100, 130)},  # squared
        {
            "size": (116, 184),
            "rows": tuple(range(15, 184, 26)),
            "columns": tuple(range(10, 116, 26)),
            "tilt": 2,
            "line": 3,
            "level": 150.0,
        },
        {"box": (8, 12, 140, 150)},  # a form's box
        {"size": (90, 160), "strokes": LEFT_FOUR, "box": (2, 16, 84, 150)},  # ... filled
        {"box": (0, 0, 149, 159), "line": 2, "level": 90.0},  # ... cut at its edge
        {"size": (84, 160), "strokes": LEFT_FOUR, "box": (2, 15, 68, 150)},  # ... written past
        {"box": (30, 20, 110, 145), "level": 90.0},  # ... narrower than RULE_SPAN
        {"rows": (20, 60, 100, 140), "tilt": 8},  # ruled, turned 3 degrees
        {"rows": (15, 45, 75, 105, 135), "columns": (10, 40, 70, 100, 130), "tilt": -8},
        {"box": (8, 12, 140, 150), "tilt": 7},  # a form's box, turned
        {"box": (30, 20, 110, 145), "level": 90.0, "tilt": -5},  # ... and narrow
        {
            "rows": (4, 34, 64, 94, 124, 155),
            "columns": (3, 33, 63, 93, 123),
            "tilt": -8,
            "level": 120.0,
        },
    ],
    ids=[
        "ruled",
        "tilted",
        "squared",
        "tilted squares",
        "box",
        "filled box",
        "box at the edge",
        "box written past",
        "narrow box",
        "turned ruled",
        "turned squares",
        "turned box",
        "turned narrow box",
        "turned squares cut at the corners",  # lines that leave through an edge
    ],
)
def test_printed_lines_are_erased_but_where_the_strokes_cross(lines: dict) -> None:
    grey, ink = sheet(**lines)
    printed = (grey == lines.get("level", 170.0)) & ~ink
    found = erased(grey)
    assert found is not None
    assert found[printed].mean() > 0.85  # all but where a stroke crosses or lies on them
    # None of the 4's strokes, though lines run under them; on a turned page a stroke's
    # end beside a line may lose a pixel or three of its edge.
    assert (found & ink).sum() <= (3 if lines.get("tilt") else 0)


def test_the_digit_reads_as_on_plain_paper() -> None:
    """The network's input of the 4 on squared paper is the one on plain paper's."""
    plain, _ = sheet()
    squared, _ = sheet(rows=(15, 45, 75, 105, 135), columns=(10, 40, 70, 100, 130), level=110.0)
    inputs = [
        preprocessing.preprocess(png_bytes(grey.astype(np.uint8))) for grey in (plain, squared)
    ]
    assert np.abs(inputs[0] - inputs[1]).mean() < 0.01


@pytest.mark.parametrize("mirrored", [False, True], ids=["7", "a bar with its stroke first"])
def test_a_digits_own_straight_stroke_stays(mirrored: bool) -> None:
    """A tight crop of a 7, its bar written thinner than its stem: the bar runs the
    whole width, as a rule does, but the stem meets it at its end: the bar does not
    run on past the writing."""
    bar, _ = sheet((120, 160), [((0, 3), (119, 3))], pen=2)
    stem, _ = sheet((120, 160), [((117, 3), (40, 159))], pen=7)
    grey = np.minimum(bar, stem)
    assert erased(grey[:, ::-1] if mirrored else grey) is None


def test_a_line_as_thick_as_the_pen_is_a_stroke() -> None:
    """The same line, printed thinner than the pen, is a rule."""
    bar = [((0, 80), (149, 80))]
    assert erased(sheet(strokes=FOUR + bar)[0]) is None
    assert erased(sheet(strokes=FOUR, rows=(80,), line=2)[0]) is not None


def test_upright_lines_count_beside_flat_ones_only() -> None:
    """An upright line alone may be a digit's stem; beside a flat rule, it is a rule."""
    assert erased(sheet(columns=(20, 130))[0]) is None
    found = erased(sheet(rows=(140,), columns=(20, 130))[0])
    assert found is not None and found[:, 20].mean() > 0.9


def test_small_images_hold_no_rules() -> None:
    grey, _ = sheet((28, 28), [((8, 4), (14, 24))], pen=3, rows=(20,))
    assert erased(grey) is None


@pytest.mark.parametrize("dark_ink", [True, False])
def test_a_frame_round_the_image_is_not_the_paper(dark_ink: bool) -> None:
    """A form's box cut at its edge: a line all round, the paper inside it; the fast
    path leaves it to the general path, which reads a 4."""
    four = [((20, 10), (14, 36), (40, 36)), ((32, 20), (32, 50))]
    plain, _ = sheet((56, 60), four, pen=4)
    grey = plain.copy()
    grey[:2], grey[-2:], grey[:, :2], grey[:, -2:] = 30.0, 30.0, 30.0, 30.0
    if not dark_ink:
        grey, plain = 255.0 - grey, 255.0 - plain
    border = paper.ring(grey, 0)
    assert ((border < 128) == dark_ink).all()
    assert paper.side(np.sort(grey, axis=None), border, grey).dark is not dark_ink
    data = png_bytes(grey.astype(np.uint8))
    assert fast_path.input_and_ink(data, preprocessing.Limits()) is None
    framed, alone = (
        preprocessing.preprocess(data),
        preprocessing.preprocess(png_bytes(plain.astype(np.uint8))),
    )
    assert np.abs(framed - alone).mean() < 0.01


def test_a_box_may_fall_short_of_writing_that_runs_past_it() -> None:
    """A box's sides need reach the writing's ends but for FRAME_SLACK of it: a digit
    written past its box (the last of a row of boxes) leaves the box a box."""
    flat = np.zeros((100, 100), dtype=bool)
    flat[10, 10:90] = flat[90, 10:90] = True
    lines = rules._Lines(flat, flat, axis=1)
    writing = (20, 80), (8, 95)  # its rows and columns: past the lines by 2 and 5 px
    assert lines.frame(*writing)
    assert not lines.frame((20, 80), (0, 100))  # past them by a tenth: no box
    slack = rules.FRAME_SLACK * (95 - 8)
    assert lines.rules(writing[1], -slack, 1.0).sum() == 160
    assert not lines.rules(writing[1], 1.0, 1.0).any()


def test_more_lines_than_paper_has_are_left_alone() -> None:
    """Over MAX_LINES lines of one orientation is noise, not paper: nothing is erased
    (and the work stays bounded)."""
    grey, _ = sheet((150, 420), rows=tuple(range(2, 420, 3)))
    assert len(range(2, 420, 3)) > rules.MAX_LINES
    assert erased(grey) is None
    assert erased(sheet((150, 420), rows=tuple(range(2, 420, 30)))[0]) is not None


def faint_of(grey: np.ndarray) -> np.ndarray:
    strength = preprocessing.ink_strength(grey)
    return ink_blobs.with_faint(strength.ink, strength.strokes)


@pytest.mark.parametrize("drift", [-8, -3, 0, 5, 10])
def test_a_turned_pages_tilt_is_found(drift: int) -> None:
    """Flat lines rising ``drift`` px across the 150 px sheet: their slope, and the
    upright lines' (leaning the other way) on the page transposed; 0 when level."""
    grey, _ = sheet(rows=(15, 45, 75, 105, 135), columns=(10, 40, 70, 100, 130), tilt=drift)
    faint = faint_of(grey)
    assert rules.tilt(faint) == pytest.approx(drift / 150, abs=0.006)
    assert rules.tilt(faint.T) == pytest.approx(-drift / 160, abs=0.006)


def test_no_tilt_without_thin_straight_lines() -> None:
    """A digit alone, even a thick bar across the image: no piece of a printed line."""
    assert rules.tilt(faint_of(sheet()[0])) is None
    bar = [((5, 70), (145, 76))]
    assert rules.tilt(faint_of(sheet(strokes=bar, pen=PEN)[0])) is None


def test_drifting_follows_its_slope_and_gives_back_the_lines_pixels() -> None:
    image = Image.new("L", (200, 60), 0)
    ImageDraw.Draw(image).line([(0, 10), (200, 24)], fill=255, width=2)  # 4 degrees
    mask = np.asarray(image) > 127
    assert not rules.drifting(mask, 150).any()  # level: too steep to follow
    found = rules.drifting(mask, 150, rise=14 / 200)
    assert (found == mask).all()


def test_a_turned_pages_corners_cut_its_lines_short() -> None:
    """A thin piece within 2 px of the image's edge is a line the edge cut (a turned
    page's corner); a thick one is a stroke, and a thin one inside the image is not."""
    rest = np.zeros((60, 80), dtype=bool)
    rest[58, 10:40] = True  # a line's piece a row short of the bottom edge
    rest[0:12, 70:80] = True  # a stroke at the corner, 10 px thick
    rest[30, 20:50] = True  # a thin piece in the middle
    cut = rules._Cut(rest)
    assert cut.pieces[58, 10:40].all()
    assert not cut.pieces[0:12, 70:80].any() and not cut.pieces[30].any()
    assert cut.thinner_than(1.0)[58, 10:40].all() and not cut.thinner_than(0.5).any()


def test_pieces_of_one_sloping_line_are_not_a_gap_between_lines() -> None:
    """Two lines 30 rows apart, turned, and a stray piece lying on the first:
    the least gap between lines is theirs, not the piece's."""
    image = Image.new("L", (150, 80), 0)
    draw = ImageDraw.Draw(image)
    for row in (10, 40):
        draw.line([(0, row), (150, row + 8)], fill=255)
    lines = np.asarray(image) > 127
    lines[11:13, 40:44] = False  # the first line broken, its piece labelled apart
    lines[13, 41:43] = True
    found = rules._Lines(lines, lines, 1, slope=8 / 150)
    assert len(found.boxes) >= 3
    assert found.least_gap() >= 20


def test_a_narrow_box_whose_one_side_overruns_its_corner() -> None:
    """A box narrower than RULE_SPAN whose bottom line runs on past the corner (as a
    form's lines cross at their corners) to RULE_SPAN of the image: no rule, but
    still the box."""
    grey, ink = sheet(box=(24, 20, 130, 145), level=90.0)
    grey[145, 8:24] = 90.0  # the overrun: the bottom line now spans 122 of 150 px
    printed = (grey == 90.0) & ~ink
    found = erased(grey)
    assert found is not None
    assert found[printed].mean() > 0.85
    assert not (found & ink).any()
