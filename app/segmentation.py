"""One line of handwritten digits -> each digit's network input and box.

Classic over-segmentation, in two halves around the network's answers:

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
   below); short pieces over a digit, within a whole digit's height of its foot
   (a 5's or a 7's bar, a 2's flat base written apart), join it;
5. pieces: each component of a group, a wide one (touching digits) cut along the
   writing's slant at the minima of its ink profile and where digits of even width
   would meet;
6. candidates: runs of up to MAX_PIECES consecutive pieces, and each component
   and each group whole however many pieces it was cut into, each normalised by
   ``preprocessing.fit_to_mnist`` exactly as /predict normalises one digit. At
   first only each group whole, or, for a group too wide for one digit, each of
   its components whole.

``Proposal.read`` (the network's outputs in)
7. these first candidates go through the network in one batch. A run of pieces
   that scores better than any split of it could (every split has two digits or
   more, each costing PIECE_COST at least) is surely one digit. A group read
   surely whole is one digit: no other candidate of it can change the answer, so
   none is made. A group that is not, and has several components, sends each
   component whole in a second batch; then the rest of its candidates, but those
   that cut a component read surely whole (they would take part of one digit), go
   in a last batch;
8. per group, the split into candidates that maximises the sum of
   log(likelihood) + log(shape prior): dynamic programming over the pieces. A
   candidate's likelihood is its top digit probability times its digit score (the
   network's 1 - p(not a digit)), so fragments and unions of two digits, which the
   network learnt are no digit, lose to whole digits.

No web framework in here: errors are ``PreprocessingError`` subclasses.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import numpy as np
from PIL import Image
from scipy import ndimage

from app import components, orientation, preprocessing
from app.candidates import Box, Candidate, Group, Slant, fewest_digits

MARK_HEIGHT = 0.45  # shorter than this share of the line's height: a mark, unless over a digit
FOOT_BELOW = 0.3  # a piece of a digit lies within its group's box, give or take this many H
NEAR = 0.15  # components closer than this many line heights are one group
WIDE = 0.4  # a component wider than this many line heights may hold touching digits (11)
CUT_SPACING = 0.08  # cuts at least this many line heights apart
WIDEST = 1.5  # a digit wider than this many line heights (along the slant) is unlikely
WIDE_PENALTY = 4.0  # log-prior per line height of width beyond WIDEST
SHORT_PENALTY = 6.0  # log-prior per line height of height short of 0.55
GAP_COST = 10.0  # log-prior per line height of gap inside one digit
MAX_SLANT = 0.6  # the steepest lean of the writing considered, columns per row
SLANT_STRIP = 0.5  # the slant is measured within strips this many line heights wide
PIECE_COST = 0.4  # log-prior per digit: a split must be worth it


class TooManyDigitsError(preprocessing.PreprocessingError):
    """More digits than MAX_DIGITS: a page of text, not a number."""


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


Scorer = Callable[[np.ndarray], tuple[np.ndarray, np.ndarray | None]]


class Proposal:
    """A line's candidate digits, made as they are needed (see the module docstring)."""

    def __init__(self, groups: list[Group], marks: list[Mark]):
        self.groups = groups
        self.marks = marks
        self.candidates: list[Candidate] = []
        self._inputs: list[np.ndarray] = []
        self._pending: list[int] = []  # groups that a split might still read better
        self._parted: set[int] = set()  # groups with their components whole made
        self._made: dict[int, set[tuple[int, int]]] = {g.number: set() for g in groups}
        for group in groups:
            whole = group.whole()
            if whole is not None:
                self._add([whole])
            else:  # too wide or too many pieces for one digit: each component whole
                self._add(group.parts())
                self._parted.add(group.number)
            if group.count > 1:
                self._pending.append(group.number)

    @property
    def inputs(self) -> np.ndarray:
        """(n, 28, 28, 1): every candidate's network input made so far."""
        return self._stacked(self._inputs)

    @property
    def pieces(self) -> list[int]:
        """How many pieces each group has, left to right."""
        return [group.count for group in self.groups]

    def _add(self, made: Iterable[tuple[Candidate, np.ndarray]]) -> list[np.ndarray]:
        added = []
        for candidate, network_input in made:
            self.candidates.append(candidate)
            self._made[candidate.group].add((candidate.first, candidate.last))
            added.append(network_input)
        self._inputs += added
        return added

    @staticmethod
    def _stacked(inputs: list[np.ndarray]) -> np.ndarray:
        if not inputs:
            return np.zeros((0, 28, 28, 1), np.float32)
        return np.stack(inputs)[..., np.newaxis]

    def expand(self) -> np.ndarray:
        """Make every group's other candidates; their inputs."""
        added: list[np.ndarray] = []
        for number in list(self._pending):
            added += self._rest(number, [])
        return self._stacked(added)

    def _rest(self, number: int, kept: list[tuple[int, int]]) -> list[np.ndarray]:
        """The group's candidates not made yet, but those that cut into a run of
        ``kept`` without taking it all."""
        self._pending.remove(number)
        return self._add(self.groups[number].runs(self._made[number], kept))

    def read(self, score: Scorer) -> list[Digit]:
        """The digits, left to right, scoring candidates with ``score`` (network inputs
        -> their (n, 10) digit probabilities and (n,) digit scores, or None) in
        batches: the first candidates, then for each group not read surely whole its
        components whole, then its other candidates (module docstring, step 7)."""
        probabilities, digit_scores = np.zeros((0, 10), np.float32), None
        batch = self.inputs
        while True:
            if len(batch):
                more_probabilities, more_scores = score(batch)
                probabilities = np.concatenate([probabilities, more_probabilities])
                if more_scores is not None:
                    digit_scores = (
                        more_scores
                        if digit_scores is None
                        else np.concatenate([digit_scores, more_scores])
                    )
            if not self._pending:
                return self.choose(probabilities, digit_scores)
            batch = self._advance(_log_likelihoods(probabilities, digit_scores))

    def _advance(self, log_scores: np.ndarray) -> np.ndarray:
        """Each pending group a step on, given the scores so far; the new inputs."""
        # Any split of a run of pieces scores -2 PIECE_COST at best: a run that scores
        # better is surely one digit.
        sure = {
            (candidate.group, candidate.first, candidate.last)
            for index, candidate in enumerate(self.candidates)
            if self._total(index, log_scores) > -2 * PIECE_COST
        }
        added: list[np.ndarray] = []
        for number in list(self._pending):
            group = self.groups[number]
            if (number, 0, group.count - 1) in sure:
                self._pending.remove(number)  # one digit
            elif number not in self._parted and len(group.components) > 1:
                self._parted.add(number)
                added += self._add(group.parts(self._made[number]))
            else:  # the rest, but none that cuts a component read surely whole
                added += self._rest(number, [(a, b) for g, a, b in sure if g == number])
        return self._stacked(added)

    def _total(self, index: int, log_scores: np.ndarray) -> float:
        """A candidate's own share of a split's score: its log likelihood, its shape
        prior (at most -PIECE_COST) and the cost of the gaps it bridges."""
        candidate = self.candidates[index]
        gaps = self.groups[candidate.group].gaps[candidate.first + 1 : candidate.last + 1]
        return (
            float(log_scores[index])
            + _prior(candidate.width, candidate.height)
            - GAP_COST * sum(gaps)
        )

    def choose(
        self, probabilities: np.ndarray, digit_scores: np.ndarray | None = None
    ) -> list[Digit]:
        """The digits, left to right: per group, the best split into the candidates made.

        ``probabilities`` (n, 10) are the classifier's for every candidate;
        ``digit_scores`` (n,) how much each looks like one digit at all (a network's
        "not a digit" output), if the network has one. A candidate's likelihood is
        its top probability times its digit score."""
        log_scores = _log_likelihoods(probabilities, digit_scores)
        inputs = self.inputs
        by_end: dict[tuple[int, int], list[int]] = {}
        for index, candidate in enumerate(self.candidates):
            by_end.setdefault((candidate.group, candidate.last), []).append(index)
        digits = []
        for group in self.groups:
            best = [0.0] + [-math.inf] * group.count  # best[k]: the first k pieces read
            back = [-1] * (group.count + 1)
            for end in range(group.count):
                for index in by_end.get((group.number, end), ()):
                    total = best[self.candidates[index].first] + self._total(index, log_scores)
                    if total > best[end + 1]:
                        best[end + 1], back[end + 1] = total, index
            path, end = [], group.count
            while end > 0:
                path.append(back[end])
                end = self.candidates[back[end]].first
            digits += [
                Digit(probabilities[i], inputs[i], self.candidates[i].box) for i in reversed(path)
            ]
        return digits


def _log_likelihoods(probabilities: np.ndarray, digit_scores: np.ndarray | None) -> np.ndarray:
    likelihood = probabilities.max(axis=1)
    if digit_scores is not None:
        likelihood = likelihood * digit_scores
    return np.log(np.maximum(likelihood, 1e-12))


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
            # At the foot: a point or a comma, unless it is a flat stroke (a 2's base).
            low = centre_row > bottom - 0.25 * (bottom - top)
            flat = right - left >= 2 * (blobs.bottom[index] - blobs.top[index])
            # No higher than a whole digit's top: a 7's or a 5's bar over a short stem.
            high = centre_row < min(top, bottom - line) - FOOT_BELOW * line
            within = centre_row <= bottom + FOOT_BELOW * line and not high
            if overlap >= 0.5 * (right - left) and within and (flat or not low):
                # Part of the digit (a 5's bar) if it weighs something; else grain on it.
                if blobs.mass[index] >= components.HEAVY * max(blobs.mass[i] for i in group):
                    group.append(index)
                break
        else:
            marks.append(index)
    return groups, marks


def _slant(groups: list[list[int]], blobs: components.Blobs, line: float) -> Slant:
    """The line's slant: the pooled regression of column on row within each
    component's upright strips, SLANT_STRIP line heights wide (within a component
    holding two touching digits, the one written higher would tilt the whole)."""
    covariance = variance = 0.0
    width = max(1.0, SLANT_STRIP * line)
    for index in (i for group in groups for i in group):
        window = blobs.labels[
            blobs.top[index] : blobs.bottom[index], blobs.left[index] : blobs.right[index]
        ]
        rows, columns = np.nonzero(window == blobs.ids[index])
        strips = (columns / width).astype(np.int64)
        count = np.maximum(np.bincount(strips), 1)
        rows = rows - (np.bincount(strips, rows) / count)[strips]  # about each strip's mean
        columns = columns - (np.bincount(strips, columns) / count)[strips]
        covariance += float((rows * columns).sum())
        variance += float((rows * rows).sum())
    slope = float(np.clip(-covariance / variance, -MAX_SLANT, MAX_SLANT)) if variance else 0.0
    tops = [int(blobs.top[i]) for group in groups for i in group]
    bottoms = [int(blobs.bottom[i]) for group in groups for i in group]
    return Slant(slope, (min(tops) + max(bottoms)) / 2)


def _pieces(
    group: list[int], blobs: components.Blobs, line: float, slant: Slant
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
    """An opened image of one line of digits -> its candidates, each group whole first."""
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
    slant = _slant(groups, blobs, line)
    pieces, gaps = zip(*(_pieces(group, blobs, line, slant) for group in groups), strict=True)
    # How few digits the pieces can make: a bound checked before any work.
    least = sum(fewest_digits(each, line) for each in pieces)
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
    drawn = (blobs, strength, strokes, line, scale, slant)
    return Proposal(
        [
            Group(number, members, pieces[number], gaps[number], *drawn)
            for number, members in enumerate(groups)
        ],
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
