"""app.segmentation: a line of digits -> candidates -> the best split."""

from __future__ import annotations

import io
import itertools

import numpy as np
import pytest
from PIL import Image, ImageDraw

from app import candidates, components, preprocessing, segmentation, splits
from tests.app.handwriting import draw_number
from tests.app.test_preprocessing import stroke_digit
from tests.conftest import png_bytes


def propose(image: Image.Image, max_digits: int = 32) -> splits.Proposal:
    """Every candidate, not only those the network's first answers call for."""
    proposal = segmentation.propose(preprocessing.open_image(png_bytes(image)), max_digits)
    proposal.expand()
    return proposal


def whole_group(proposal: splits.Proposal) -> int:
    """The index of the candidate made of every piece of the one group."""
    (count,) = proposal.pieces
    return next(i for i, c in enumerate(proposal.candidates) if (c.first, c.last) == (0, count - 1))


def test_one_digit_is_normalised_exactly_as_predict_does() -> None:
    data = png_bytes(stroke_digit())
    proposal = segmentation.propose(preprocessing.open_image(data), 32)
    whole = whole_group(proposal)  # the digit, perhaps also cut into pieces to try
    np.testing.assert_allclose(proposal.inputs[whole], preprocessing.preprocess(data), atol=1e-6)


def test_candidates_come_with_their_inputs_and_boxes() -> None:
    image, drawn = draw_number("70", gap=1.0)
    proposal = propose(image)
    assert proposal.inputs.shape == (len(proposal.candidates), 28, 28, 1)
    assert len(proposal.pieces) == 2  # two groups, each perhaps cut into pieces to try
    for candidate in proposal.candidates:
        left, top, right, bottom = drawn[proposal.line_group(candidate.group)]
        box = candidate.box
        assert left - 10 <= box.x and box.x + box.width <= right + 10
        assert top - 10 <= box.y and box.y + box.height <= bottom + 10


def test_the_digit_score_decides_between_splits() -> None:
    """A 4 in two strokes: read as one digit, unless the network says the union is
    no digit (its "not a digit" output)."""
    image, _ = draw_number("4")
    proposal = propose(image)
    (count,) = proposal.pieces  # its two strokes, perhaps cut further
    assert count >= 2
    probabilities = np.full((len(proposal.candidates), 10), 0.1, dtype=np.float32)
    scores = np.ones(len(proposal.candidates), dtype=np.float32)
    assert len(proposal.choose(probabilities)) == 1
    assert len(proposal.choose(probabilities, scores)) == 1
    for index, c in enumerate(proposal.candidates):  # the union, in every variant too
        if (c.first, c.last) == (0, proposal.groups[c.group].count - 1):
            scores[index] = 1e-6
    assert len(proposal.choose(probabilities, scores)) == 2


def test_the_digit_count_is_bounded_before_any_work() -> None:
    image, _ = draw_number("1111", gap=0.6)
    with pytest.raises(segmentation.TooManyDigitsError, match="More than 3 digits"):
        propose(image, max_digits=3)
    assert len(propose(image, max_digits=4).pieces) == 4


def test_boxes_scale_to_the_upload() -> None:
    assert segmentation.Box(10, 20, 30, 40).scaled(2.0, 0.5) == segmentation.Box(20, 10, 60, 20)


@pytest.mark.parametrize("specks", [0, 300])
def test_blobs_measured_within_their_boxes_as_over_the_image(
    monkeypatch: pytest.MonkeyPatch, specks: int
) -> None:
    """``components.find`` sums a few blobs within their boxes and many over the
    whole image (a page of specks): the same blobs, masses and pen width either way."""
    image, _ = draw_number("4071")
    pixels = np.asarray(image).copy()
    rng = np.random.default_rng(0)
    pixels[rng.integers(0, pixels.shape[0], specks), rng.integers(0, pixels.shape[1], specks)] = 0
    strength = preprocessing.ink_strength(pixels.astype(np.float32))
    found = {}
    for few in (10_000, 0):  # every image within boxes; every image over the whole
        monkeypatch.setattr(components, "FEW_BLOBS", few)
        found[few] = components.find(strength.ink, strength.strokes)
    (boxed, boxed_pen), (whole, whole_pen) = found.values()
    np.testing.assert_array_equal(boxed.ids, whole.ids)
    np.testing.assert_allclose(boxed.mass, whole.mass, rtol=1e-9)
    assert boxed_pen == pytest.approx(whole_pen, rel=1e-12)


def test_ruled_paper_alone_is_no_digit() -> None:
    pixels = np.full((300, 500), 255, dtype=np.uint8)
    for row in (60, 140, 220):
        pixels[row : row + 3, :] = 0
    with pytest.raises(preprocessing.NoDigitError, match="only lines"):
        segmentation.propose(preprocessing.open_image(png_bytes(pixels)), 32)


@pytest.mark.parametrize("seed", range(20))
def test_the_whole_takes_every_piece_and_its_edge_but_no_other_stroke(seed: int) -> None:
    """A group's whole is masked by ``any_piece``, its pieces by ``nearest_piece``:
    the same pixels, another group's strokes and what lies behind them left out."""
    rng = np.random.default_rng(seed)
    shape = tuple(rng.integers(5, 40, 2))
    piece_of = np.where(rng.random(shape) < 0.1, rng.integers(0, 4, shape), -1)
    strokes = (piece_of >= 0) | (rng.random(shape) < 0.3)  # the rest: other strokes
    margin = int(rng.integers(1, 7))
    near = candidates.nearest_piece(piece_of, strokes, margin)
    np.testing.assert_array_equal(candidates.any_piece(piece_of, strokes, margin), near >= 0)


def test_a_wide_component_is_cut_into_pieces() -> None:
    """Two digits joined by a stroke: one component, cut where the ink is thin."""
    image, drawn = draw_number("70", gap=0.1)
    pixels = np.asarray(image).copy()
    middle = round((drawn[0][2] + drawn[1][0]) / 2)
    pixels[85:93, round(drawn[0][2]) - 20 : round(drawn[1][0]) + 20] = 0  # the join
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, "PNG")
    proposal = segmentation.propose(preprocessing.open_image(buffer.getvalue()), 32)
    proposal.expand()
    assert proposal.pieces[0] >= 2
    boxes = [c.box for c in proposal.candidates if c.first == c.last]
    assert any(abs(box.x + box.width - middle) < 30 for box in boxes)


@pytest.mark.parametrize("seed", range(30))
def test_a_bent_cut_crosses_no_more_ink_than_the_straight_one(seed: int) -> None:
    """A bent cut strays from its straight line by at most a column a row and
    PATH_REACH line heights in all, and crosses no more ink than that line does."""
    rng = np.random.default_rng(seed)
    rows, width, line = int(rng.integers(5, 80)), int(rng.integers(5, 120)), 40.0
    mask = rng.random((rows, width)) < rng.uniform(0.05, 0.6)
    lean = rng.uniform(-0.5, 0.5, (3, 1)) * np.arange(rows)
    straight = np.clip(rng.integers(0, width, (3, 1)) + lean.astype(np.int64), 0, width)
    bent = segmentation._bent(mask, straight, line)
    strayed = bent - straight
    assert np.abs(np.diff(strayed, axis=1)).max(initial=0) <= 1
    assert np.abs(strayed).max() <= round(segmentation.PATH_REACH * line)

    def crossed(path: np.ndarray) -> int:
        inside = (path >= 0) & (path < width)
        return int(mask[np.arange(rows)[inside], path[inside]].sum())

    for cut in range(3):
        assert crossed(bent[cut]) <= crossed(straight[cut])


def finely_cut(monkeypatch: pytest.MonkeyPatch) -> None:
    """Cut every wide component every CUT_SPACING line heights, as an uneven stroke
    can be: many more pieces than one digit's MAX_PIECES."""

    def every_step(profile: np.ndarray, height: float) -> list[int]:
        step = max(1, round(segmentation.CUT_SPACING * height))
        return list(range(step, profile.size - step + 1, step))

    monkeypatch.setattr(segmentation, "_cuts", every_step)


def test_a_block_is_not_cut() -> None:
    """A 1 stretched to fill its box, as postal scans hold digits, is a block as wide
    as a digit: its ink runs the line's height in every column, so no cut is offered
    through it (cut at even widths, it read as 1s)."""
    image = Image.new("L", (300, 200), 255)
    ImageDraw.Draw(image).rectangle((100, 50, 180, 150), fill=0)
    assert propose(image).pieces == [1]
    ImageDraw.Draw(image).rectangle((140, 50, 180, 110), fill=255)  # an L: cut
    assert propose(image).pieces[0] >= 2


def test_a_digit_cut_into_many_pieces_is_still_a_candidate_whole(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    finely_cut(monkeypatch)
    image, _ = draw_number("2")
    proposal = segmentation.propose(preprocessing.open_image(png_bytes(image)), max_digits=1)
    (count,) = proposal.pieces
    assert count > candidates.MAX_PIECES
    assert [(c.first, c.last) for c in proposal.candidates] == [(0, count - 1)]


def test_the_fewest_digits_of_a_group() -> None:
    """A lower bound on the digits a group reads as: runs of up to MAX_PIECES pieces,
    or a component or the group whole, however many pieces, if narrow enough."""

    def piece(label: int, first: float) -> candidates.Piece:  # 10 px along the slant
        return candidates.Piece(label, first, first + 10, first, first + 10, 0, 0, np.ones((1, 1)))

    stroke = [piece(1, 10.0 * i) for i in range(7)]  # one stroke, 70 px wide
    assert candidates.fewest_digits(stroke, line=40.0) == 1  # 1.75 line heights
    assert candidates.fewest_digits(stroke, line=20.0) == 2  # 3.5: runs of 5 and 2
    two = stroke + [piece(2, 70.0 + 10 * i) for i in range(7)]  # 140 px
    assert candidates.fewest_digits(two, line=40.0) == 2  # each stroke whole
    assert candidates.fewest_digits(two, line=100.0) == 1  # the group whole


def test_one_stroke_wider_than_a_run_may_be_is_a_candidate_whole() -> None:
    """A 2 with a long tail is one stroke wider than MAX_WIDTH line heights: taken
    whole it is a candidate (up to COMPONENT_MAX_WIDTH), a run of pieces that wide not."""
    image, _ = draw_number("2", gap=0.5)
    image = image.resize((round(image.width * 2.8), image.height), Image.Resampling.BILINEAR)
    proposal = propose(image)
    (count,) = proposal.pieces
    assert count >= 2
    widths = {(c.first, c.last): c.width for c in proposal.candidates if c.group == 0}
    assert candidates.MAX_WIDTH < widths[(0, count - 1)] <= candidates.COMPONENT_MAX_WIDTH
    assert all(
        width <= candidates.MAX_WIDTH
        for (first, last), width in widths.items()
        if (first, last) != (0, count - 1)
    )


class Scorer:
    """A stand-in network whose answer depends on the input alone, the same whichever
    batch it comes in: a group's whole and each component whole get the digit score
    ``whole``, every other candidate random answers (``salt``)."""

    def __init__(self, every: splits.Proposal, whole: float, salt: int):
        rng = np.random.default_rng(salt)
        self.answers = {}
        for network_input, candidate in zip(every.inputs, every.candidates, strict=True):
            weights = rng.random(10) ** rng.uniform(1, 100)
            group = every.groups[candidate.group]
            wholes = [(0, group.count - 1), *group.components]
            is_whole = (candidate.first, candidate.last) in wholes
            score = whole if is_whole else min(1.0, rng.uniform(0.3, 1.5))
            self.answers[network_input.tobytes()] = (weights / weights.sum(), score)

    def __call__(self, inputs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        answers = [self.answers[network_input.tobytes()] for network_input in inputs]
        return np.array([p for p, _ in answers]), np.array([score for _, score in answers])


@pytest.mark.parametrize(
    ("text", "gap"), [("4", 0.3), ("70", 1.0), ("70", 0.1), ("1234", 0.05), ("505", -0.05)]
)
def test_reading_in_batches_chooses_what_every_candidate_would(text: str, gap: float) -> None:
    """Candidates beyond a group's whole (or its components whole) are made only when
    a split could win: the best split among those that cut no component read surely
    whole, whatever the network answers, and no candidate that cuts one is made. A
    group's variants (cut along other slants) are made whole, every run, when tried."""
    image, _ = draw_number(text, gap=gap)
    every = propose(image)
    for whole, salt in itertools.product(np.linspace(0.05, 1, 20), range(4)):
        score = Scorer(every, whole, salt)
        probabilities, scores = score(every.inputs)
        log_scores = candidates.log_likelihoods(probabilities, scores)
        sure = [
            (c.group, c.first, c.last)
            for index, c in enumerate(every.candidates)
            if c.group == every.line_group(c.group)
            and (c.first, c.last) in every.groups[c.group].components
            and every._total(index, log_scores) > -2 * splits.PIECE_COST
        ]
        cuts = [
            any(
                g == c.group and c.first <= b and a <= c.last and not (c.first <= a and b <= c.last)
                for g, a, b in sure
            )
            for c in every.candidates
        ]
        best = every.choose(probabilities, np.where(cuts, 0.0, scores))
        lazy = segmentation.propose(preprocessing.open_image(png_bytes(image)), 32)
        read = [(digit.digit, digit.box) for digit in lazy.read(score)]
        assert read == [(digit.digit, digit.box) for digit in best]
        made = {(c.group, c.first, c.last) for c in lazy.candidates}
        assert not any(
            (c.group, c.first, c.last) in made
            for c, cut in zip(every.candidates, cuts, strict=True)
            if cut
        )


def test_a_group_read_surely_whole_is_not_cut() -> None:
    """A 4 in two strokes: read as a certain 4, one batch of one candidate and no
    split tried; read as anything at 10 %, its two strokes whole go through a second
    batch, the rest of its pieces' runs through a third."""
    image, _ = draw_number("4")
    batches: list[int] = []

    def answering(probability: np.ndarray):
        def score(inputs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
            batches.append(len(inputs))
            return np.tile(probability, (len(inputs), 1)), np.ones(len(inputs))

        return score

    proposal = segmentation.propose(preprocessing.open_image(png_bytes(image)), 32)
    assert proposal.pieces[0] >= 2  # a split is possible
    digits = proposal.read(answering(np.eye(10)[4]))
    assert batches == [1]
    assert [digit.digit for digit in digits] == [4]

    batches.clear()
    proposal = segmentation.propose(preprocessing.open_image(png_bytes(image)), 32)
    proposal.read(answering(np.full(10, 0.1)))
    group = proposal.groups[0]
    assert len(group.components) == 2
    assert batches[:2] == [1, 2] and batches[2] >= 1
    # Its best split unsure, a group whose strokes are cut is cut along bent paths
    # and other slants.
    cut = group.count > len(group.members)
    assert len(proposal.pieces) == 1
    assert len(proposal.groups) == 1 + cut * (1 + len(splits.TILTS))
    assert len(batches) == 3 + cut


def test_another_slant_is_read_only_where_the_lines_split_is_unsure() -> None:
    """Touching digits, one component cut into pieces: its variants cut along other
    slants are read, and the best of their splits wins, only where a digit of the
    split at the line's slant is not read surely (the bent variant, read too where
    that split cuts through a stroke, as here, loses a tie to the line's)."""
    image, _ = draw_number("17", gap=-0.3)
    every = propose(image)
    assert len(every.pieces) == 1
    assert len(every.groups) == 2 + len(splits.TILTS)  # cut: its variants are made
    line = np.array([c.group == 0 for c in every.candidates])
    variants = np.eye(10, dtype=np.float32)[7][np.newaxis].repeat(len(line), axis=0)
    for certainty, expected in ((1.0, 1), (0.3, 7)):
        line_answers = np.full((len(line), 10), (1 - certainty) / 9, dtype=np.float32)
        line_answers[:, 1] = certainty
        probabilities = np.where(line[:, np.newaxis], line_answers, variants)
        read = every.choose(probabilities, np.ones(len(line), dtype=np.float32))
        assert {digit.digit for digit in read} == {expected}


def test_the_slant_of_touching_digits_is_not_tilted_by_their_baseline() -> None:
    """Two upright digits that touch, the second written higher: each stands
    straight, so the writing does not lean, though the one blob they make runs
    uphill (measured over the whole blob, its rise read as the steepest lean)."""
    image = Image.new("L", (320, 260), 255)
    draw = ImageDraw.Draw(image)
    draw.line([(60, 60), (60, 200)], fill=0, width=10)  # upright, on the baseline
    draw.line([(200, 20), (200, 160)], fill=0, width=10)  # upright, 40 px higher
    draw.line([(60, 150), (200, 120)], fill=0, width=10)  # a stroke joins them
    strength = preprocessing.ink_strength(preprocessing.grey_levels(image))
    blobs, pen = components.find(strength.ink, strength.strokes)
    line = components.line_height(blobs, pen)
    groups, _ = segmentation._groups(blobs, line)
    assert len(groups) == 1 and len(groups[0]) == 1  # one blob
    assert abs(segmentation._slant(groups, blobs, line).slope) < 0.05


FIVE_BODY = [(0.2, 0.05), (0.15, 0.45), (0.6, 0.4), (0.9, 0.6), (0.85, 0.9), (0.5, 1.0), (0.1, 0.9)]


@pytest.mark.parametrize(
    ("bar", "body"),
    [
        # A 7 whose bar floats well above a short stem (higher than the stem's top by
        # more than a fifth of the line).
        ([(0.05, -0.05), (0.95, -0.05)], [(0.75, 0.3), (0.35, 1.0)]),
        # A 2 whose base was written apart, below the end of its curve.
        ([(0.1, 1.0), (0.95, 1.0)], [(0.1, 0.25), (0.3, 0.02), (0.9, 0.25), (0.3, 0.8)]),
        # A 5 whose bar, written apart, runs on well right of its body (over it for
        # 40 % of its length; for a few pixels).
        ([(0.55, 0.0), (1.6, -0.04)], FIVE_BODY),
        ([(0.97, 0.0), (1.7, -0.04)], FIVE_BODY),
    ],
)
def test_a_digits_detached_bar_is_part_of_it_not_a_mark(bar: list, body: list) -> None:
    """The bar lies over (or under) the stroke it belongs to, within a whole digit's
    height: it joins that digit's group instead of being skipped as a dash."""
    image = Image.new("L", (420, 200), 255)
    draw = ImageDraw.Draw(image)
    for left in (40, 300):  # full-height 1s on either side set the line's height
        draw.line([(left, 40), (left, 160)], fill=0, width=9)
    for stroke in (bar, body):
        draw.line([(140 + 72 * x, 40 + 120 * y) for x, y in stroke], fill=0, width=9)
    strength = preprocessing.ink_strength(preprocessing.grey_levels(image))
    blobs, pen = components.find(strength.ink, strength.strokes)
    groups, marks = segmentation._groups(blobs, components.line_height(blobs, pen))
    assert marks == []
    assert [len(group) for group in groups] == [1, 2, 1]  # the bar with its digit


def test_a_faint_bar_broken_into_dashes_is_part_of_its_digit() -> None:
    """A 7 written with a light touch on its bar: the threshold breaks the bar into
    dashes weighing 2-4 % of the stem. Over the digit's upper part they join it
    (segmentation.UPPER_PART); left out, the 7 is read as a 1."""
    image = Image.new("L", (420, 200), 255)
    draw = ImageDraw.Draw(image)
    for left in (40, 300):  # full-height 1s on either side set the line's height
        draw.line([(left, 40), (left, 160)], fill=0, width=9)
    draw.line([(201, 40), (165, 160)], fill=0, width=9)  # the stem
    for left in (150, 174):
        draw.line([(left, 42), (left + 14, 42)], fill=120, width=5)
    strength = preprocessing.ink_strength(preprocessing.grey_levels(image))
    blobs, pen = components.find(strength.ink, strength.strokes)
    dashes = blobs.height < 10
    assert np.count_nonzero(dashes) == 2
    assert (blobs.mass[dashes] < components.HEAVY * blobs.mass.max()).all()
    groups, marks = segmentation._groups(blobs, components.line_height(blobs, pen))
    assert marks == []
    assert [len(group) for group in groups] == [1, 3, 1]


SMALL_FIVE = [  # a 5 half the line's height: its body and its bar, each a mark's height
    [(0.2, 0.15), (0.15, 0.5), (0.6, 0.45), (0.9, 0.65), (0.85, 0.9), (0.5, 1.0), (0.1, 0.9)],
    [(0.25, 0.0), (0.95, 0.0)],
]


@pytest.mark.parametrize(
    ("strokes", "groups", "marks"),
    [
        (SMALL_FIVE, [1, 2, 1], 0),  # together as tall as a digit: one
        ([[(0.25, 0.1), (0.35, 0.1)], [(0.25, 0.9), (0.35, 0.9)]], [1, 1], 2),  # a colon
        ([[(0.0, 0.3), (0.9, 0.3)], [(0.0, 0.8), (0.9, 0.8)]], [1, 1], 2),  # an equals sign
    ],
)
def test_short_strokes_over_one_another_are_a_digit_if_one_is_no_dash_or_point(
    strokes: list, groups: list, marks: int
) -> None:
    """Each stroke of a small 5 written in two is shorter than a mark's limit; over one
    another they stand as tall as a digit: one group, not two marks skipped. A colon's
    points and an equals sign's dashes stay marks."""
    image = Image.new("L", (420, 200), 255)
    draw = ImageDraw.Draw(image)
    for left in (40, 300):  # full-height 1s on either side set the line's height
        draw.line([(left, 40), (left, 160)], fill=0, width=9)
    for stroke in strokes:
        draw.line([(150 + 42 * x, 108 + 52 * y) for x, y in stroke], fill=0, width=9)
    strength = preprocessing.ink_strength(preprocessing.grey_levels(image))
    blobs, pen = components.find(strength.ink, strength.strokes)
    line = components.line_height(blobs, pen)
    assert (blobs.height < segmentation.MARK_HEIGHT * line).sum() == 2  # each stroke short
    found, skipped = segmentation._groups(blobs, line)
    assert [len(group) for group in found] == groups
    assert len(skipped) == marks


def hairline_strokes(lines: int) -> np.ndarray:
    """Ink of strokes a pixel wide: ``lines`` rows of small print's stems, or (one) a
    hairline's upright strokes broken into dashes."""
    ink = np.zeros((200, 200), np.float32)
    if lines == 1:
        for column in range(20, 190, 30):
            ink[20:180, column] = (np.arange(160) % 5 < 3).astype(np.float32)
        return ink
    for row in range(lines):
        ink[20 + row * 18 : 28 + row * 18, 10:190:5] = 1.0
    return ink


@pytest.mark.parametrize(("lines", "grown"), [(1, True), (9, False)])
def test_hairlines_are_grown_but_not_small_print(lines: int, grown: bool) -> None:
    """A line of strokes a pixel wide, broken into dashes, is grown before grouping;
    rows of small print are several lines tall once grown: each letter's stems had run
    into a blob, a line of print read as "11191111"."""
    ink = hairline_strokes(lines)
    strokes = ink > 0.5
    blobs, pen = components.find(ink, strokes)
    assert pen <= segmentation.HAIRLINE_PEN
    assert (segmentation._grown_hairline(ink, strokes, blobs, pen) is not None) is grown
