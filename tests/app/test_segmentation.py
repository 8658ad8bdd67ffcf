"""app.segmentation: a line of digits -> candidates -> the best split."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from app import preprocessing, segmentation
from tests.app.handwriting import draw_number
from tests.app.test_preprocessing import stroke_digit
from tests.conftest import png_bytes


def propose(image: Image.Image, max_digits: int = 32) -> segmentation.Proposal:
    return segmentation.propose(preprocessing.open_image(png_bytes(image)), max_digits)


def whole_group(proposal: segmentation.Proposal) -> int:
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
        left, top, right, bottom = drawn[candidate.group]
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
    union = whole_group(proposal)
    probabilities = np.full((len(proposal.candidates), 10), 0.1, dtype=np.float32)
    scores = np.ones(len(proposal.candidates), dtype=np.float32)
    assert len(proposal.choose(probabilities)) == 1
    assert len(proposal.choose(probabilities, scores)) == 1
    scores[union] = 1e-6
    assert len(proposal.choose(probabilities, scores)) == 2


def test_the_digit_count_is_bounded_before_any_work() -> None:
    image, _ = draw_number("1111", gap=0.6)
    with pytest.raises(segmentation.TooManyDigitsError, match="More than 3 digits"):
        propose(image, max_digits=3)
    assert len(propose(image, max_digits=4).pieces) == 4


def test_boxes_scale_to_the_upload() -> None:
    assert segmentation.Box(10, 20, 30, 40).scaled(2.0, 0.5) == segmentation.Box(20, 10, 60, 20)


def test_ruled_paper_alone_is_no_digit() -> None:
    pixels = np.full((300, 500), 255, dtype=np.uint8)
    for row in (60, 140, 220):
        pixels[row : row + 3, :] = 0
    with pytest.raises(preprocessing.NoDigitError, match="only lines"):
        segmentation.propose(preprocessing.open_image(png_bytes(pixels)), 32)


def test_a_wide_component_is_cut_into_pieces() -> None:
    """Two digits joined by a stroke: one component, cut where the ink is thin."""
    image, drawn = draw_number("70", gap=0.1)
    pixels = np.asarray(image).copy()
    middle = round((drawn[0][2] + drawn[1][0]) / 2)
    pixels[85:93, round(drawn[0][2]) - 20 : round(drawn[1][0]) + 20] = 0  # the join
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, "PNG")
    proposal = segmentation.propose(preprocessing.open_image(buffer.getvalue()), 32)
    assert proposal.pieces[0] >= 2
    boxes = [c.box for c in proposal.candidates if c.first == c.last]
    assert any(abs(box.x + box.width - middle) < 30 for box in boxes)
