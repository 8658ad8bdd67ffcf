"""A group of pieces on a line of digits -> candidate digits, each as the network sees it.

``app.segmentation`` finds the groups and cuts them into pieces; here any run of
consecutive pieces becomes a candidate: its ink (its pieces' strokes and their
anti-aliased edge, no other stroke) normalised by ``preprocessing.fit_to_mnist``,
exactly as /predict normalises one digit, with its box in the upload's pixels; and
what a line is read as: each ``Digit`` chosen, each ``Mark`` that is no digit.
"""

from __future__ import annotations

import functools
import itertools
import math
from collections.abc import Callable, Collection, Iterator
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from app import components, ink_blobs, preprocessing

# Candidates' network inputs -> their (n, 10) digit probabilities and (n,) scores, or None.
Scorer = Callable[[np.ndarray], tuple[np.ndarray, np.ndarray | None]]

MAX_PIECES = 6  # pieces one digit may be made of
MAX_WIDTH = 1.5  # no candidate digit is wider than this many line heights,
COMPONENT_MAX_WIDTH = 2.0  # but one stroke taken whole may be (a 2 with a long tail)
# A group read as LETTER_STROKES 1s or more, two neighbours of which are cut from one
# stroke and lean to either side of upright, each by LEAN_AWAY degrees or more and
# LEANS_APART apart, is a letter's zigzag (a W, an M), not 1s (``letter_strokes``).
LETTER_STROKES = 3
LEAN_AWAY = 5.0
LEANS_APART = 15.0


@dataclass(frozen=True)
class Box:
    x: int
    y: int
    width: int
    height: int

    def scaled(self, factor_x: float, factor_y: float) -> Box:
        left, top = math.floor(self.x * factor_x), math.floor(self.y * factor_y)
        right = math.ceil((self.x + self.width) * factor_x)
        bottom = math.ceil((self.y + self.height) * factor_y)
        return Box(left, top, right - left, bottom - top)


class FrameCuts(NamedTuple):
    """How the image's edges cut a line's strokes (``rejection.looks_like_digits``): the
    most that its left or its right edge cuts, and how many run from its top edge to its
    bottom edge."""

    sides: int = 0
    spans: int = 0


NO_CUTS = FrameCuts()


@dataclass(frozen=True)
class Candidate:
    group: int
    first: int  # the pieces first..last of its group
    last: int
    box: Box  # in the upload's pixels
    width: float  # along the writing's slant, in line heights
    height: float


class Piece(NamedTuple):
    """Part of one stroke component: all of it, or the part between two cuts."""

    label: int
    first: float  # where it starts along the slant (a sheared column): its cut or ink
    end: float  # where it ends
    ink_first: float  # the sheared column of its first pixel
    ink_end: float  # past its last
    top: int  # its component's box's corner
    left: int
    mask: np.ndarray  # its pixels within that box


@dataclass(frozen=True)
class Slant:
    """Columns along the writing's slant: a pixel's sheared column is
    ``x + slope × (row - middle)``, the same all along a stroke that leans by ``slope``."""

    slope: float
    middle: float

    def columns(self, top: int, bottom: int, left: int, right: int) -> np.ndarray:
        rows = np.arange(top, bottom, dtype=np.float32)[:, np.newaxis] - self.middle
        return np.arange(left, right, dtype=np.float32)[np.newaxis, :] + self.slope * rows


def nearest_piece(piece_of: np.ndarray, strokes: np.ndarray, margin: int) -> np.ndarray:
    """Each pixel's piece: its own for a stroke pixel, a neighbouring one's within
    ``margin`` steps for the anti-aliased edge (as ``ink_blobs.dilated`` grows a
    mask), -1 elsewhere and on strokes of no piece of this group."""
    near = np.where(strokes & (piece_of < 0), -2, piece_of)
    for _ in range(margin):
        around = np.full_like(near, -1)
        np.maximum(around[1:], near[:-1], out=around[1:])
        np.maximum(around[:-1], near[1:], out=around[:-1])
        np.maximum(around[:, 1:], near[:, :-1], out=around[:, 1:])
        np.maximum(around[:, :-1], near[:, 1:], out=around[:, :-1])
        near = np.where(near == -1, around, near)
    return np.where(near == -2, -1, near)


def any_piece(piece_of: np.ndarray, strokes: np.ndarray, margin: int) -> np.ndarray:
    """``nearest_piece(...) >= 0`` without telling the pieces apart, in a fraction of
    its time: the pieces grown by ``margin`` steps, never into other strokes."""
    mask = piece_of >= 0
    free = mask | ~strokes
    for _ in range(margin):
        mask = ink_blobs.dilated(mask, 1) & free
    return mask


def component_runs(pieces: list[Piece]) -> list[tuple[int, int]]:
    """Each component's pieces, first..last, where they are consecutive (the pieces
    left to right)."""
    runs = []
    for label in dict.fromkeys(piece.label for piece in pieces):
        positions = [i for i, piece in enumerate(pieces) if piece.label == label]
        if positions[-1] - positions[0] == len(positions) - 1:
            runs.append((positions[0], positions[-1]))
    return runs


def widest(first: int, last: int, components: Collection[tuple[int, int]]) -> float:
    """How wide, in line heights, pieces first..last may be to make one digit: one
    component whole up to COMPONENT_MAX_WIDTH, any other run of them up to MAX_WIDTH."""
    return COMPONENT_MAX_WIDTH if (first, last) in components else MAX_WIDTH


def fewest_digits(pieces: list[Piece], line: float) -> int:
    """The fewest digits a group's pieces can be read as, before any candidate is
    made: each digit a run of up to MAX_PIECES pieces, or a component or the whole
    group, whatever its pieces, if no wider than ``widest`` allows."""
    count = len(pieces)
    longer: dict[int, list[int]] = {}  # end -> starts of the long runs that may be one digit
    runs = component_runs(pieces)
    for first, last in {(0, count - 1), *runs}:
        span = pieces[first : last + 1]
        width = (max(piece.end for piece in span) - min(piece.first for piece in span)) / line
        if last - first >= MAX_PIECES and width <= widest(first, last, runs):
            longer.setdefault(last + 1, []).append(first)
    fewest = [0]  # fewest[k]: the first k pieces
    for end in range(1, count + 1):
        starts = [*range(max(0, end - MAX_PIECES), end), *longer.get(end, ())]
        fewest.append(1 + min(fewest[start] for start in starts))
    return fewest[count]


class Group:
    """One group's pieces in their window: any run of up to MAX_PIECES consecutive
    pieces as a candidate digit, its ink (the pieces' strokes and their anti-aliased
    edge, no other stroke) through ``fit_to_mnist``, with its box and shape."""

    def __init__(
        self,
        number: int,
        group: list[int],
        pieces: list[Piece],
        gaps: list[float],
        blobs: components.Blobs,
        strength: preprocessing.InkStrength,
        strokes: np.ndarray,
        line: float,
        scale: tuple[float, float],
        slant: Slant,
    ):
        self.number, self.count, self.gaps = number, len(pieces), gaps
        self.members = group  # its components' indices among the blobs
        self.slant = slant  # the one its pieces are cut along
        self.line, self.scale = line, scale
        ink = strength.ink
        self.margin = margin = ink_blobs.halo(ink.shape)
        top = max(0, min(int(blobs.top[i]) for i in group) - margin)
        bottom = min(ink.shape[0], max(int(blobs.bottom[i]) for i in group) + margin)
        left = max(0, min(int(blobs.left[i]) for i in group) - margin)
        right = min(ink.shape[1], max(int(blobs.right[i]) for i in group) + margin)
        self.corner = (top, left)
        piece_of = np.full((bottom - top, right - left), -1, dtype=np.int32)
        self.extents = []  # each piece's rows and columns in the window, ends exclusive
        for position, piece in enumerate(pieces):
            rows, columns = piece.mask.shape
            row0, column0 = piece.top - top, piece.left - left
            piece_of[row0 : row0 + rows, column0 : column0 + columns][piece.mask] = position
            row_start, row_end, col_start, col_end = ink_blobs.bounds(piece.mask)
            self.extents.append(
                (
                    row0 + row_start,
                    row0 + row_end,
                    column0 + col_start,
                    column0 + col_end,
                    piece.ink_first,
                    piece.ink_end,
                )
            )
        self.components = component_runs(pieces)
        self.labels = [piece.label for piece in pieces]  # each piece's component
        self._piece_of, self._strokes = piece_of, strokes[top:bottom, left:right]
        self.ink = ink[top:bottom, left:right]

    def pixels(self, first: int, last: int) -> tuple[np.ndarray, np.ndarray]:
        """The rows and columns, in the decoded image, of pieces first..last's strokes."""
        rows, columns = np.nonzero((self._piece_of >= first) & (self._piece_of <= last))
        return rows + self.corner[0], columns + self.corner[1]

    @functools.cached_property
    def near(self) -> np.ndarray:
        """Each window pixel's piece (``nearest_piece``): made only once a run of
        pieces short of the whole is."""
        return nearest_piece(self._piece_of, self._strokes, self.margin)

    @functools.cached_property
    def reach(self) -> np.ndarray:
        """``near >= 0``: the whole group's ink and edge."""
        return any_piece(self._piece_of, self._strokes, self.margin)

    def share(self, one: Candidate, other: Candidate) -> bool:
        """Whether two of its candidates hold pieces of one component (a cut between)."""
        labels = self.labels
        return bool(
            set(labels[one.first : one.last + 1]) & set(labels[other.first : other.last + 1])
        )

    def lean(self, first: int, last: int) -> float:
        """How far pieces first..last's strokes lean from upright, in degrees (their
        principal axis; positive: the top to the right)."""
        rows, columns = self.pixels(first, last)
        if len(rows) < 3:
            return 0.0
        _, vectors = np.linalg.eigh(np.cov(np.stack([columns, rows]).astype(np.float64)))
        across, down = vectors[:, 1] * (1 if vectors[1, 1] >= 0 else -1)  # pointing down
        return -math.degrees(math.atan2(across, down))

    def whole(self) -> tuple[Candidate, np.ndarray] | None:
        """The group as one digit, if that is a candidate at all (however many pieces
        its components were cut into: a wide 0 or 2 alone is cut, and is one digit)."""
        return self.run(0, self.count - 1)

    def parts(
        self, made: Collection[tuple[int, int]] = ()
    ) -> Iterator[tuple[Candidate, np.ndarray]]:
        """Each component whole (its pieces consecutive, however many), but those in
        ``made``."""
        for first, last in self.components:
            if (first, last) not in made:
                part = self.run(first, last)
                if part is not None:
                    yield part

    def runs(
        self, made: Collection[tuple[int, int]] = (), kept: Collection[tuple[int, int]] = ()
    ) -> Iterator[tuple[Candidate, np.ndarray]]:
        """Every run of up to MAX_PIECES pieces and every component whole as a
        candidate, but those in ``made`` and those that cut into a run in ``kept`` (a
        component read surely whole) without taking it all."""

        def wanted(first: int, last: int) -> bool:
            return (first, last) not in made and not any(
                first <= b and a <= last and not (first <= a and b <= last) for a, b in kept
            )

        tried = set()
        for first in range(self.count):
            for last in range(first, min(first + MAX_PIECES, self.count)):
                if not wanted(first, last):
                    continue
                tried.add((first, last))
                candidate = self.run(first, last)
                if candidate is None:
                    break  # wider still with more pieces (but a component whole may not be)
                yield candidate
        for first, last in self.components:
            if (first, last) not in tried and wanted(first, last):
                candidate = self.run(first, last)
                if candidate is not None:
                    yield candidate

    def run(
        self, first: int, last: int, any_width: bool = False
    ) -> tuple[Candidate, np.ndarray] | None:
        """Pieces first..last as a digit, or None when that is too wide for one (unless
        ``any_width``)."""
        chosen = self.extents[first : last + 1]
        row0, row1 = min(e[0] for e in chosen), max(e[1] for e in chosen)
        col0, col1 = min(e[2] for e in chosen), max(e[3] for e in chosen)
        # Its width along the slant: what a digit's shape is judged by.
        width = (max(e[5] for e in chosen) - min(e[4] for e in chosen)) / self.line
        if not any_width and last > first and width > widest(first, last, self.components):
            return None
        # The digit's window with room for its edge.
        margin, (top, left) = self.margin, self.corner
        r0, r1 = max(0, row0 - margin), min(self.ink.shape[0], row1 + margin)
        c0, c1 = max(0, col0 - margin), min(self.ink.shape[1], col1 + margin)
        if (first, last) == (0, self.count - 1):
            mask = self.reach[r0:r1, c0:c1]
        else:
            inside = self.near[r0:r1, c0:c1]
            mask = (inside >= first) & (inside <= last)
        box = Box(left + col0, top + row0, col1 - col0, row1 - row0)
        candidate = Candidate(
            self.number,
            first,
            last,
            box.scaled(*self.scale),
            float(width),
            (row1 - row0) / self.line,
        )
        return candidate, preprocessing.fit_to_mnist(self.ink[r0:r1, c0:c1] * mask)


@dataclass(frozen=True)
class Mark:
    """Ink on the line that is no digit: ``point`` (a decimal point or comma),
    ``dash``, or ``mark`` (anything else short: a stray stroke)."""

    kind: str
    box: Box


@dataclass(frozen=True)
class Digit:
    probabilities: np.ndarray  # (10,)
    network_input: np.ndarray  # (28, 28, 1)
    box: Box
    # How much its candidate looks like one whole digit (``calibration.candidate_score``;
    # 1 where the network does not say): what ``rejection.looks_like_digits`` averages.
    score: float = 1.0

    @property
    def digit(self) -> int:
        return int(np.argmax(self.probabilities))

    @property
    def confidence(self) -> float:
        return float(self.probabilities[self.digit])


def letter_strokes(group: Group, split: list[Candidate], digits: np.ndarray) -> bool:
    """Whether a split of ``group`` (its candidates, left to right, read as ``digits``)
    is a letter's strokes: three 1s or more, two neighbours of which are cut from one
    stroke and lean apart (LEAN_AWAY, LEANS_APART)."""
    if len(split) < LETTER_STROKES or any(digit != 1 for digit in digits):
        return False
    for one, other in itertools.pairwise(split):
        if not group.share(one, other):
            continue
        first, second = group.lean(one.first, one.last), group.lean(other.first, other.last)
        opposed = first * second < 0 and min(abs(first), abs(second)) >= LEAN_AWAY
        if opposed and abs(first - second) >= LEANS_APART:
            return True
    return False


def letters(
    groups: list[Group],
    candidates: list[Candidate],
    chosen: dict[int, tuple[int, list[int]]],
    probabilities: np.ndarray,
) -> list[int]:
    """The line groups whose chosen split (by line group: the group or variant cut, and
    its candidates' indices) is a letter's strokes (``letter_strokes``)."""
    return [
        number
        for number, (variant, path) in chosen.items()
        if letter_strokes(
            groups[variant], [candidates[i] for i in path], probabilities[path].argmax(axis=1)
        )
    ]


def stacked(inputs: list[np.ndarray]) -> np.ndarray:
    """(n, 28, 28, 1): candidates' network inputs as one batch."""
    if not inputs:
        return np.zeros((0, 28, 28, 1), np.float32)
    return np.stack(inputs)[..., np.newaxis]


def scored(
    score: Scorer, batch: np.ndarray, probabilities: np.ndarray, scores: np.ndarray | None
) -> tuple[np.ndarray, np.ndarray | None, np.ndarray]:
    """The candidates' probabilities and scores so far with ``batch``'s (if any) after,
    and all their log likelihoods (``log_likelihoods``)."""
    if len(batch):
        more_probabilities, more_scores = score(batch)
        if more_scores is not None:
            scores = more_scores if scores is None else np.concatenate([scores, more_scores])
        probabilities = np.concatenate([probabilities, more_probabilities])
    return probabilities, scores, log_likelihoods(probabilities, scores)


def log_likelihoods(probabilities: np.ndarray, scores: np.ndarray | None) -> np.ndarray:
    """Each candidate's log likelihood: its top probability times its score, if any."""
    likelihood = probabilities.max(axis=1)
    if scores is not None:
        likelihood = likelihood * scores
    return np.log(np.maximum(likelihood, 1e-12))
