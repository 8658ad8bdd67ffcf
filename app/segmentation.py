"""One line of handwritten digits -> each digit's network input and box.

Classic over-segmentation, in two halves around one network call:

``propose`` (no network)
1. the ink of the whole line: ``preprocessing.ink_strength``, every mark kept (a
   decimal point must survive to be told apart from a digit);
2. components (``app.components``): the stroke blobs, specks dropped, at most
   MAX_COMPONENTS of them; rules (ruled paper, an underline, a form's box) erased
   except where a stroke crosses them; the line's digit height H;
3. marks: a component under MARK_HEIGHT × H that does not sit over a digit (a
   decimal point, a comma, a dash) is no digit: it is listed, with its box, and
   skipped;
4. groups: digit components that overlap horizontally or nearly touch are one
   group (a 4 or a 5 written in two strokes, or two digits: the network decides
   below); small pieces over a digit (a 5's bar) join it;
5. pieces: each component of a group, a wide one (touching digits) cut along the
   writing's slant at the minima of its ink profile and where digits of even width
   would meet;
6. candidates: runs of up to MAX_PIECES consecutive pieces, each normalised by
   ``preprocessing.fit_to_mnist`` exactly as /predict normalises one digit.

``Proposal.choose`` (the network's outputs in)
7. per group, the split into candidates that maximises the sum of
   log(likelihood) + log(shape prior): dynamic programming over the pieces. A
   candidate's likelihood is its top digit probability times its digit score (the
   network's 1 - p(not a digit)), so fragments and unions of two digits, which the
   network learnt are no digit, lose to whole digits.

No web framework in here: errors are ``PreprocessingError`` subclasses.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
from PIL import Image
from scipy import ndimage

from app import components, orientation, preprocessing

MARK_HEIGHT = 0.45  # shorter than this share of the line's height: a mark, unless over a digit
NEAR = 0.15  # components closer than this many line heights are one group
WIDE = 0.4  # a component wider than this many line heights may hold touching digits (11)
CUT_SPACING = 0.08  # cuts at least this many line heights apart
MAX_PIECES = 5  # pieces one digit may be made of
MAX_WIDTH = 1.5  # no candidate digit is wider than this many line heights
WIDEST = 1.3  # a digit wider than this many line heights (along the slant) is unlikely
WIDE_PENALTY = 4.0  # log-prior per line height of width beyond WIDEST
SHORT_PENALTY = 6.0  # log-prior per line height of height short of 0.55
GAP_COST = 10.0  # log-prior per line height of gap inside one digit
MAX_SLANT = 0.6  # the steepest lean of the writing considered, columns per row
PIECE_COST = 0.4  # log-prior per digit: a split must be worth it


class TooManyDigitsError(preprocessing.PreprocessingError):
    """More digits than MAX_DIGITS: a page of text, not a number."""


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

    @property
    def digit(self) -> int:
        return int(np.argmax(self.probabilities))

    @property
    def confidence(self) -> float:
        return float(self.probabilities[self.digit])


@dataclass(frozen=True)
class Candidate:
    group: int
    first: int  # the pieces first..last of its group
    last: int
    box: Box  # in the upload's pixels
    width: float  # along the writing's slant, in line heights
    height: float


@dataclass(frozen=True)
class Proposal:
    inputs: np.ndarray  # (n, 28, 28, 1): every candidate's network input
    candidates: list[Candidate]
    pieces: list[int]  # how many pieces each group has, left to right
    gaps: list[list[float]]  # per group and piece: the gap before it, in line heights
    marks: list[Mark]

    def choose(
        self, probabilities: np.ndarray, digit_scores: np.ndarray | None = None
    ) -> list[Digit]:
        """The digits, left to right: per group, the best split into candidates.

        ``probabilities`` (n, 10) are the classifier's for every candidate;
        ``digit_scores`` (n,) how much each looks like one digit at all (a network's
        "not a digit" output), if the network has one. A candidate's likelihood is
        its top probability times its digit score."""
        likelihood = probabilities.max(axis=1)
        if digit_scores is not None:
            likelihood = likelihood * digit_scores
        log_scores = np.log(np.maximum(likelihood, 1e-12))
        by_end: dict[tuple[int, int], list[int]] = {}
        for index, candidate in enumerate(self.candidates):
            by_end.setdefault((candidate.group, candidate.last), []).append(index)
        digits = []
        for group, count in enumerate(self.pieces):
            best = [0.0] + [-math.inf] * count  # best[k]: the first k pieces read
            back = [-1] * (count + 1)
            for end in range(count):
                for index in by_end.get((group, end), ()):
                    candidate = self.candidates[index]
                    total = (
                        best[candidate.first]
                        + log_scores[index]
                        + _prior(candidate.width, candidate.height)
                        - GAP_COST * sum(self.gaps[group][candidate.first + 1 : candidate.last + 1])
                    )
                    if total > best[end + 1]:
                        best[end + 1], back[end + 1] = total, index
            path, end = [], count
            while end > 0:
                path.append(back[end])
                end = self.candidates[back[end]].first
            digits += [
                Digit(probabilities[i], self.inputs[i], self.candidates[i].box)
                for i in reversed(path)
            ]
        return digits


def _cuts(profile: np.ndarray, height: float) -> list[int]:
    """Where a wide component may hold two digits or more: its column profile's
    minima, and where digits of an even width would meet (overlapping digits leave
    no minimum there)."""
    width = profile.size
    margin = max(1, round(CUT_SPACING * height))
    smooth = max(1, round(0.05 * height))
    profile = ndimage.uniform_filter1d(profile.astype(np.float32), 2 * smooth + 1)
    window = ndimage.minimum_filter1d(profile, 2 * margin + 1)
    minima = sorted(
        (c for c in range(margin, width - margin) if profile[c] <= window[c]),
        key=lambda c: (profile[c], c),
    )
    count = max(2, round(width / (0.6 * height)))
    even = [round(width * k / n) for n in range(2, count + 1) for k in range(1, n)]
    wanted = math.ceil(width / (0.3 * height)) + 1
    chosen: list[int] = []
    for column in minima[:wanted] + even:
        if margin <= column <= width - margin and all(abs(column - c) >= margin for c in chosen):
            chosen.append(column)
    return sorted(chosen)


def _prior(width: float, height: float) -> float:
    """log plausibility of a digit's shape, its sides in line heights."""
    return (
        -WIDE_PENALTY * max(0.0, width - WIDEST)
        - SHORT_PENALTY * max(0.0, 0.55 - height)
        - PIECE_COST
    )


def _mark_kind(width: int, height: int, line: float) -> str:
    if width >= 2 * height:
        return "dash"
    if max(width, height) <= 0.35 * line:
        return "point"
    return "mark"


def _groups(blobs: components.Blobs, line: float) -> tuple[list[list[int]], list[int]]:
    """Digit groups (lists of blob indices, left to right) and the marks' indices."""
    tall = blobs.height >= MARK_HEIGHT * line
    order = sorted(np.flatnonzero(tall), key=lambda i: blobs.left[i])
    groups: list[list[int]] = []
    extents: list[list[int]] = []  # each group's [left, right, top, bottom]
    for index in order:
        left, right = int(blobs.left[index]), int(blobs.right[index])
        if extents:
            group_left, group_right = extents[-1][:2]
            overlap = min(right, group_right) - max(left, group_left)
            if overlap >= -NEAR * line:  # the network decides later if it is one digit
                groups[-1].append(index)
                extent = extents[-1]
                extent[1] = max(group_right, right)
                extent[2] = min(extent[2], int(blobs.top[index]))
                extent[3] = max(extent[3], int(blobs.bottom[index]))
                continue
        groups.append([index])
        extents.append([left, right, int(blobs.top[index]), int(blobs.bottom[index])])
    marks = []
    for index in np.flatnonzero(~tall):
        left, right = int(blobs.left[index]), int(blobs.right[index])
        centre_row = (blobs.top[index] + blobs.bottom[index]) / 2
        for group, (group_left, group_right, top, bottom) in zip(groups, extents, strict=True):
            overlap = min(right, group_right) - max(left, group_left)
            low = centre_row > bottom - 0.25 * (bottom - top)  # a point or comma at the foot
            if overlap >= 0.5 * (right - left) and not low and top - 0.2 * line <= centre_row:
                # Part of the digit (a 5's bar) if it weighs something; else grain on it.
                if blobs.mass[index] >= components.HEAVY * max(blobs.mass[i] for i in group):
                    group.append(index)
                break
        else:
            marks.append(index)
    return groups, marks


@dataclass(frozen=True)
class _Slant:
    """Columns along the writing's slant: a pixel's sheared column is
    ``x + slope × (row - middle)``, the same all along a stroke that leans by ``slope``."""

    slope: float
    middle: float

    def columns(self, top: int, bottom: int, left: int, right: int) -> np.ndarray:
        rows = np.arange(top, bottom, dtype=np.float32)[:, np.newaxis] - self.middle
        return np.arange(left, right, dtype=np.float32)[np.newaxis, :] + self.slope * rows


def _slant(groups: list[list[int]], blobs: components.Blobs) -> _Slant:
    """The line's slant: the pooled within-component regression of column on row."""
    covariance = variance = 0.0
    for index in (i for group in groups for i in group):
        window = blobs.labels[
            blobs.top[index] : blobs.bottom[index], blobs.left[index] : blobs.right[index]
        ]
        rows, columns = np.nonzero(window == blobs.ids[index])
        rows, columns = rows - rows.mean(), columns - columns.mean()
        covariance += float((rows * columns).sum())
        variance += float((rows * rows).sum())
    slope = float(np.clip(-covariance / variance, -MAX_SLANT, MAX_SLANT)) if variance else 0.0
    tops = [int(blobs.top[i]) for group in groups for i in group]
    bottoms = [int(blobs.bottom[i]) for group in groups for i in group]
    return _Slant(slope, (min(tops) + max(bottoms)) / 2)


def _pieces(
    group: list[int], blobs: components.Blobs, line: float, slant: _Slant
) -> tuple[list[tuple[int, float, float]], list[float]]:
    """A group's pieces as (label, first sheared column, end), left to right, and the
    gap before each, in line heights (0 where pieces overlap)."""
    pieces = []
    for index in group:
        label = int(blobs.ids[index])
        top, bottom = int(blobs.top[index]), int(blobs.bottom[index])
        left, right = int(blobs.left[index]), int(blobs.right[index])
        sheared = slant.columns(top, bottom, left, right)
        own = blobs.labels[top:bottom, left:right] == label
        first, end = float(sheared[own].min()), float(sheared[own].max()) + 1
        columns = [first, end]
        if end - first > WIDE * line:
            bins = np.floor(sheared[own] - first).astype(np.int64)
            profile = np.bincount(bins, minlength=int(end - first))
            columns = [first, *(first + c for c in _cuts(profile, line)), end]
        pieces += [(label, start, stop) for start, stop in itertools.pairwise(columns)]
    pieces.sort(key=lambda piece: piece[1] + piece[2])  # by their middle
    gaps = [0.0]  # before the first piece: none
    reach = pieces[0][2]
    for after in pieces[1:]:
        gaps.append(max(0.0, after[1] - reach) / line)
        reach = max(reach, after[2])
    return pieces, gaps


def propose(image: Image.Image, max_digits: int) -> Proposal:
    """An opened image of one line of digits -> the candidates to score, in one batch."""
    width, height = orientation.upright_size(image)
    decoded = preprocessing.decode(image)
    scale = (width / decoded.width, height / decoded.height)
    strength = preprocessing.ink_strength(preprocessing.grey_levels(decoded))
    ink, strokes = strength.ink, strength.strokes
    blobs, pen = components.find(ink, strokes)
    line = components.line_height(blobs, pen)
    cleaned = components.without_rules(strokes, blobs, line)
    if cleaned is not None:
        if not cleaned.any():
            raise preprocessing.NoDigitError("No digit found: only lines, no writing.")
        strokes = cleaned
        blobs, _ = components.find(ink, strokes, pen)
        line = components.line_height(blobs, pen)
    # Rules that no digit touched are long flat blobs of their own.
    flat = (blobs.width >= components.RULE_LENGTH * line) & (blobs.height <= 0.25 * line)
    groups, mark_indices = _groups(blobs, line)
    groups = [group for group in groups if not all(flat[i] for i in group)]
    if not groups:
        raise preprocessing.NoDigitError("No digit found: only marks that are not digits.")
    slant = _slant(groups, blobs)
    pieces, gaps = zip(*(_pieces(group, blobs, line, slant) for group in groups), strict=True)
    # Every digit is made of at most MAX_PIECES pieces: a bound checked before any work.
    least = sum(math.ceil(len(each) / MAX_PIECES) for each in pieces)
    if least > max_digits:
        raise TooManyDigitsError(
            f"More than {max_digits} digits (MAX_DIGITS): {least} found at least."
        )
    top = min(int(blobs.top[i]) for group in groups for i in group)
    bottom = max(int(blobs.bottom[i]) for group in groups for i in group)
    marks = [
        Mark(_mark_kind(int(blobs.width[i]), int(blobs.height[i]), line), _box(blobs, i, scale))
        for i in mark_indices
        if not flat[i]
        and top - line / 2 <= (blobs.top[i] + blobs.bottom[i]) / 2 <= bottom + line / 2
    ]
    candidates: list[Candidate] = []
    inputs: list[np.ndarray] = []
    for number, group in enumerate(groups):
        for candidate, network_input in _candidates(
            number, group, pieces[number], blobs, strength, strokes, line, scale, slant
        ):
            candidates.append(candidate)
            inputs.append(network_input)
    return Proposal(
        np.stack(inputs)[..., np.newaxis],
        candidates,
        [len(each) for each in pieces],
        list(gaps),
        marks,
    )


def _box(blobs: components.Blobs, index: int, scale: tuple[float, float]) -> Box:
    box = Box(
        int(blobs.left[index]),
        int(blobs.top[index]),
        int(blobs.width[index]),
        int(blobs.height[index]),
    )
    return box.scaled(*scale)


def _nearest_piece(piece_of: np.ndarray, strokes: np.ndarray, margin: int) -> np.ndarray:
    """Each pixel's piece: its own for a stroke pixel, a neighbouring one's within
    ``margin`` steps for the anti-aliased edge (as ``preprocessing.dilated`` grows a
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


def _candidates(
    number: int,
    group: list[int],
    pieces: list[tuple[int, float, float]],
    blobs: components.Blobs,
    strength: preprocessing.InkStrength,
    strokes: np.ndarray,
    line: float,
    scale: tuple[float, float],
    slant: _Slant,
) -> Iterator[tuple[Candidate, np.ndarray]]:
    """Each run of up to MAX_PIECES consecutive pieces of a group, as a digit: its
    ink (the pieces' strokes and their anti-aliased edge, no other stroke) through
    ``fit_to_mnist``, its box and its shape prior."""
    ink = strength.ink
    margin = preprocessing.halo(ink.shape)
    top = max(0, min(int(blobs.top[i]) for i in group) - margin)
    bottom = min(ink.shape[0], max(int(blobs.bottom[i]) for i in group) + margin)
    left = max(0, min(int(blobs.left[i]) for i in group) - margin)
    right = min(ink.shape[1], max(int(blobs.right[i]) for i in group) + margin)
    labels = blobs.labels[top:bottom, left:right]
    piece_of = np.full(labels.shape, -1, dtype=np.int32)
    columns = slant.columns(top, bottom, left, right)
    extents = []  # each piece's rows and columns in the window, ends exclusive
    for position, (label, start, end) in enumerate(pieces):
        own = (labels == label) & (columns >= start) & (columns < end)
        piece_of[own] = position
        rows, cols = np.flatnonzero(own.any(axis=1)), np.flatnonzero(own.any(axis=0))
        sheared = columns[own]
        extents.append(
            (rows[0], rows[-1] + 1, cols[0], cols[-1] + 1, sheared.min(), sheared.max() + 1)
        )
    near = _nearest_piece(piece_of, strokes[top:bottom, left:right], margin)
    window_ink = ink[top:bottom, left:right]
    for first in range(len(pieces)):
        for last in range(first, min(first + MAX_PIECES, len(pieces))):
            chosen = extents[first : last + 1]
            row0, row1 = min(e[0] for e in chosen), max(e[1] for e in chosen)
            col0, col1 = min(e[2] for e in chosen), max(e[3] for e in chosen)
            # Its width along the slant: what a digit's shape is judged by.
            width = (max(e[5] for e in chosen) - min(e[4] for e in chosen)) / line
            if last > first and width > MAX_WIDTH:
                break
            # The digit's window with room for its edge.
            r0, r1 = max(0, row0 - margin), min(piece_of.shape[0], row1 + margin)
            c0, c1 = max(0, col0 - margin), min(piece_of.shape[1], col1 + margin)
            inside = near[r0:r1, c0:c1]
            mask = (inside >= first) & (inside <= last)
            box = Box(left + col0, top + row0, col1 - col0, row1 - row0)
            yield (
                Candidate(
                    number,
                    first,
                    last,
                    box.scaled(*scale),
                    float(width),
                    (row1 - row0) / line,
                ),
                preprocessing.fit_to_mnist(window_ink[r0:r1, c0:c1] * mask),
            )
