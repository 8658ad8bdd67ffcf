"""app.pairs: touching digits read whole by the pair reader, and /read's use of it."""

from __future__ import annotations

import hashlib
import itertools
import json
import math
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw

from app import candidates, pairs, preprocessing, segmentation, splits
from app.config import DEFAULT_MODEL_PATH
from tests.app.handwriting import draw_digit, draw_number
from tests.conftest import png_bytes

SHIPPED = DEFAULT_MODEL_PATH.parent


def one_hot(index: int, probability: float = 0.97) -> np.ndarray:
    outputs = np.full(pairs.NOT_A_PAIR + 1, (1 - probability) / pairs.NOT_A_PAIR, np.float32)
    outputs[index] = probability
    return outputs


def test_a_pairs_ink_is_fitted_into_its_box_its_shape_kept() -> None:
    ink = np.zeros((90, 300), np.float32)
    ink[20:70, 50:150] = 1.0  # 50 x 100 of ink: twice as wide as tall
    fitted = pairs.fit_pair(ink)
    assert fitted.shape == pairs.INPUT_SHAPE[:2]
    rows = np.flatnonzero(fitted.max(axis=1) > 0.5)
    columns = np.flatnonzero(fitted.max(axis=0) > 0.5)
    assert rows[-1] - rows[0] + 1 == 24 and columns[-1] - columns[0] + 1 == 48
    assert rows[0] == 2 and columns[0] == 4  # centred
    assert not pairs.fit_pair(np.zeros((10, 10), np.float32)).any()


def test_a_wide_line_is_fitted_by_its_width() -> None:
    ink = np.zeros((40, 400), np.float32)
    ink[10:30, :] = 1.0
    columns = np.flatnonzero(pairs.fit_pair(ink).max(axis=0) > 0.5)
    assert columns[-1] - columns[0] + 1 == 52


def test_a_sure_pair_gives_each_digit_its_probabilities() -> None:
    outputs = np.full(pairs.NOT_A_PAIR + 1, 0.03 / 99, np.float32)
    outputs[37], outputs[38] = 0.92, 0.05  # "38" too: the second digit 7, or 8
    first, second = pairs.pair(outputs)
    assert int(first.argmax()) == 3 and first[3] > 0.95
    assert int(second.argmax()) == 7 and 0.85 < second[7] < 0.95 and second[8] > 0.04
    assert first.sum() == pytest.approx(1) and second.sum() == pytest.approx(1)


def test_an_unsure_pair_or_no_pair_is_no_reading() -> None:
    assert pairs.pair(one_hot(37, pairs.SURE - 0.05)) is None
    assert pairs.pair(one_hot(pairs.NOT_A_PAIR)) is None


def test_no_pair_reader_shipped_is_none(tmp_path: Path) -> None:
    assert pairs.load(tmp_path) is None


def test_a_pair_reader_unlike_its_card_stops_the_start(tmp_path: Path) -> None:
    shutil.copy(SHIPPED / pairs.CARD, tmp_path / pairs.CARD)
    (tmp_path / pairs.FILE).write_bytes(b"not the shipped file")
    with pytest.raises(pairs.PairReaderError, match="checksum"):
        pairs.load(tmp_path)


def test_the_shipped_pair_reader_matches_its_card() -> None:
    card = json.loads((SHIPPED / pairs.CARD).read_text())
    assert hashlib.sha256((SHIPPED / pairs.FILE).read_bytes()).hexdigest() == card["sha256"]
    reader = pairs.load(SHIPPED)
    assert reader is not None
    outputs = reader(np.zeros((3, *pairs.INPUT_SHAPE), np.float32))
    assert outputs.shape == (3, pairs.NOT_A_PAIR + 1)
    np.testing.assert_allclose(outputs.sum(axis=1), 1, atol=1e-4)


class Scorers:
    """A digit network answering ``digit`` for every candidate of ``proposal`` (and,
    if ``whole_is_none``, that a group's pieces all together are no digit; with
    ``widest``, that a candidate wider than that many line heights is none), and a
    pair reader answering ``pair`` for every input (or, given one answer a row, each
    in turn); what each was asked."""

    def __init__(
        self,
        digit: np.ndarray,
        pair: np.ndarray,
        whole_is_none: bool = False,
        widest: float = math.inf,
    ):
        self.digit, self.pair, self.whole_is_none = digit, pair, whole_is_none
        self.widest = widest
        self.proposal: splits.Proposal | None = None
        self.batches: list[int] = []
        self.pair_batches: list[tuple[int, ...]] = []
        self.pair_inputs: list[np.ndarray] = []

    def score(self, inputs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        assert self.proposal is not None
        made = self.proposal.candidates[sum(self.batches) :][: len(inputs)]
        self.batches.append(len(inputs))
        whole = [(c.first, c.last) == (0, self.proposal.groups[c.group].count - 1) for c in made]
        wide = [c.width > self.widest for c in made]
        scores = np.where((np.array(whole) & self.whole_is_none) | np.array(wide), 1e-6, 1.0)
        return np.tile(self.digit, (len(inputs), 1)), scores

    def read_pairs(self, inputs: np.ndarray) -> np.ndarray:
        self.pair_batches.append(inputs.shape)
        self.pair_inputs += list(inputs)
        if self.pair.ndim == 2:
            return self.pair[: len(inputs)]
        return np.tile(self.pair, (len(inputs), 1))


def read(image, scorers: Scorers, pair_reader: bool = True) -> list[candidates.Digit]:
    scorers.proposal = segmentation.propose(preprocessing.open_image(png_bytes(image)), 32)
    return scorers.proposal.read(scorers.score, scorers.read_pairs if pair_reader else None)


def test_touching_digits_the_pair_reader_is_sure_of_are_that_pair() -> None:
    """The digit network unsure of every candidate, and sure that the two together
    are no digit: the group's best split cuts through the strokes, and its digits
    are the pair reader's, each in its own box (of the group's best split in two)."""
    image, drawn = draw_number("30", gap=-0.1)
    scorers = Scorers(np.full(10, 0.1, np.float32), one_hot(30), whole_is_none=True)
    digits = read(image, scorers)
    assert scorers.pair_batches == [(1, *pairs.INPUT_SHAPE)]
    assert [digit.digit for digit in digits] == [3, 0]
    assert digits[0].confidence == pytest.approx(0.97 + 0.03 / 100 * 9, abs=1e-3)
    for digit, (left, top, right, bottom) in zip(digits, drawn, strict=True):
        box = digit.box
        assert left - 10 <= box.x + box.width / 2 <= right + 10  # its middle in its digit
        assert top - 10 <= box.y and box.y + box.height <= bottom + 10
    assert digits[0].box.x < digits[1].box.x


def test_a_pair_reader_unsure_leaves_the_split() -> None:
    image, _ = draw_number("30", gap=-0.1)
    flat = np.full(10, 0.1, np.float32)
    unsure = Scorers(flat, one_hot(30, 0.6), whole_is_none=True)
    without = Scorers(flat, one_hot(30), whole_is_none=True)
    boxes = [
        [digit.box for digit in read(image, scorers, pair_reader=scorers is unsure)]
        for scorers in (unsure, without)
    ]
    assert unsure.pair_batches  # asked, and not sure
    assert len(boxes[0]) == 2 and boxes[0] == boxes[1]


@pytest.mark.parametrize("no_pair", [pairs.NO_PAIR, 0.97])
def test_a_split_in_two_the_reader_says_is_no_pair_is_one_digit(no_pair: float) -> None:
    """One digit the splits cut in two (the network reads its whole no better than the
    halves: a 5 as "15", a 2 as "21"): where the reader says "not two digits", the
    group is one digit, its whole candidate as the network reads it; just under
    NO_PAIR, the split stands."""
    image, drawn = draw_number("30", gap=-0.1)
    flat = np.full(10, 0.1, np.float32)
    one = read(image, Scorers(flat, one_hot(pairs.NOT_A_PAIR, no_pair), whole_is_none=True))
    assert len(one) == 1
    left, top = drawn[0][:2]
    right, bottom = drawn[1][2:]
    box = one[0].box
    assert abs(box.x - left) <= 10 and abs(box.x + box.width - right) <= 10
    assert abs(box.y - top) <= 10 and abs(box.y + box.height - bottom) <= 10
    below = one_hot(pairs.NOT_A_PAIR, pairs.NO_PAIR - 0.01)
    assert len(read(image, Scorers(flat, below, whole_is_none=True))) == 2


def test_two_digits_close_read_as_one_are_not_asked() -> None:
    """Close, not touching, the two read surely as one digit: no stroke is cut."""
    image, _ = draw_number("30", gap=-0.05)
    scorers = Scorers(np.eye(10, dtype=np.float32)[0], one_hot(30))
    assert len(read(image, scorers)) == 1
    assert scorers.pair_batches == []


def test_one_digit_read_surely_is_not_asked() -> None:
    image, _ = draw_number("0")
    scorers = Scorers(np.eye(10, dtype=np.float32)[0], one_hot(30, 0.999))
    assert [digit.digit for digit in read(image, scorers)] == [0]
    assert scorers.pair_batches == []


def test_touching_digits_read_as_one_not_surely_are_a_pair_only_if_the_reader_is_surer() -> None:
    """Two touching digits the digit network reads best as one digit, though not
    surely (every candidate 0.1 likely: the whole beats any split): the pair reader
    is asked, and its pair is kept only at SURE_WHOLE."""
    image, _ = draw_number("30", gap=-0.1)
    flat = np.full(10, 0.1, np.float32)
    sure = Scorers(flat, one_hot(30, (1 + pairs.SURE_WHOLE) / 2))
    assert [digit.digit for digit in read(image, sure)] == [3, 0]
    unsure = Scorers(flat, one_hot(30, (pairs.SURE + pairs.SURE_WHOLE) / 2))
    assert len(read(image, unsure)) == 1
    assert sure.pair_batches == unsure.pair_batches == [(1, *pairs.INPUT_SHAPE)]


@pytest.mark.parametrize("likely", [splits.CERTAIN - 0.01, splits.CERTAIN])
def test_touching_digits_read_surely_as_one_wide_digit_are_asked_unless_certain(
    likely: float,
) -> None:
    """Two touching digits merged into one shape the network reads surely as one digit
    (a "10" as 6): wider than WIDE_WHOLE line heights and read under CERTAIN, the group
    is asked, and a pair the reader is sure of (SURE_WHOLE) is those two digits, in the
    boxes of the group's split made then; read at CERTAIN, it is not asked."""
    image, drawn = draw_number("30", gap=-0.1)
    zero = np.full(10, (1 - likely) / 9, np.float32)
    zero[0] = likely
    scorers = Scorers(zero, one_hot(30, (1 + pairs.SURE_WHOLE) / 2))
    digits = read(image, scorers)
    if likely >= splits.CERTAIN:
        assert scorers.pair_batches == [] and len(digits) == 1
        return
    assert scorers.pair_batches == [(1, *pairs.INPUT_SHAPE)]
    assert len(scorers.batches) == 2  # the group whole, then its split when the pair was sure
    assert [digit.digit for digit in digits] == [3, 0]
    for digit, (left, _, right, _) in zip(digits, drawn, strict=True):
        assert left - 10 <= digit.box.x + digit.box.width / 2 <= right + 10


def test_digits_apart_read_surely_are_not_asked() -> None:
    image, _ = draw_number("30", gap=0.4)
    scorers = Scorers(np.eye(10, dtype=np.float32)[0], one_hot(30, 0.999))
    assert len(read(image, scorers)) == 2
    assert scorers.pair_batches == []


def test_digits_apart_read_unsurely_are_asked_each_and_stay_one_digit() -> None:
    image, _ = draw_number("30", gap=0.4)
    scorers = Scorers(np.full(10, 0.1, np.float32), one_hot(pairs.NOT_A_PAIR, 0.999))
    assert len(read(image, scorers)) == 2
    assert scorers.pair_batches == [(2, *pairs.INPUT_SHAPE)]


def touching_pair_among(before: bool = False) -> Image.Image:
    """A touching "30" and a 5 close after it (with ``before``, another close before
    it): one group, each 5 components of its own."""
    image, drawn = draw_number("30", gap=-0.1)
    shift = 80 if before else 0
    wide = Image.new("L", (image.width + 80 + shift, image.height), 255)
    wide.paste(image, (shift, 0))
    draw = ImageDraw.Draw(wide)
    draw_digit(draw, "5", shift + drawn[1][2] + 5, 40, 100, 10)
    if before:
        draw_digit(draw, "5", shift + drawn[0][0] - 70, 40, 100, 10)
    return wide


@pytest.mark.parametrize(("before", "read_as"), [(False, [3, 0, 5]), (True, [5, 3, 0, 5])])
def test_two_touching_digits_among_close_ones_are_a_pair_where_the_group_is_not(
    before: bool, read_as: list[int]
) -> None:
    """The group split in three (3 | 0 | 5: no candidate wider than a digit is one) or,
    with a 5 before it too, in four; the 3 and 0 cut apart, each 5 whole components of
    its own: the reader is asked about the group and about each two neighbouring digits'
    ink, the 30's alone among them, in one batch. The group is no pair, the 30 is: its
    digits are the reader's, in their candidates' boxes; the 5s stay as the digit
    network reads them (5, unsurely)."""
    image = touching_pair_among(before)
    digit = np.full(10, 0.09, np.float32)
    digit[5] = 0.19

    def answering(thirty: np.ndarray) -> np.ndarray:  # the group, then two by two
        return np.stack(
            [one_hot(pairs.NOT_A_PAIR)]
            + [
                thirty if two == before else one_hot(pairs.NOT_A_PAIR)
                for two in range(len(read_as) - 1)
            ]
        )

    answers = answering(one_hot(30))
    scorers = Scorers(digit, answers, widest=0.7)
    digits = read(image, scorers)
    assert scorers.pair_batches == [(len(read_as), *pairs.INPUT_SHAPE)]
    group, thirty = scorers.pair_inputs[0], scorers.pair_inputs[1 + before]
    assert not np.allclose(group, thirty)
    assert [d.digit for d in digits] == read_as
    assert all(a.box.x < b.box.x for a, b in itertools.pairwise(digits))
    zero, five = digits[read_as.index(0)].box, digits[-1].box
    assert zero.x + zero.width <= five.x + 10
    fives = [5] * len(read_as)
    without = Scorers(digit, answers, widest=0.7)
    assert [d.digit for d in read(image, without, pair_reader=False)] == fives
    unsure = Scorers(digit, answering(one_hot(30, 0.6)), widest=0.7)
    assert [d.digit for d in read(image, unsure)] == fives


@pytest.mark.parametrize("number", ["302", "305"])
def test_three_touching_digits_are_no_pair_two_by_two_only_if_each_two_are_none(
    number: str,
) -> None:
    """Split in three, no digit apart from the others: the reader is asked about the
    group and each two neighbouring digits in one batch, and no two are taken as a pair
    (no digit stands apart). Where it says "not two digits" of each two, the group is
    its whole candidate (a letter cut into strokes, a W read as "111"); where any two
    may be a pair, the split stands. A 5's bar written apart makes the group two
    components, too wide for its whole to be a candidate at first: it is made then."""
    image, _ = draw_number(number, gap=-0.1)
    digit = np.full(10, 0.09, np.float32)
    digit[5] = 0.19
    assert len(read(image, Scorers(digit, one_hot(30), widest=0.7), pair_reader=False)) == 3
    letters = Scorers(digit, one_hot(pairs.NOT_A_PAIR), widest=0.7)
    assert len(read(image, letters)) == 1
    assert letters.pair_batches == [(3, *pairs.INPUT_SHAPE)]  # the group, then two by two
    maybe = np.stack([one_hot(pairs.NOT_A_PAIR)] * 2 + [one_hot(30, 0.6)])
    digits = read(image, Scorers(digit, maybe, widest=0.7))
    assert [d.digit for d in digits] == [5, 5, 5]  # as the digit network reads them
