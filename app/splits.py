"""A line's candidate digits -> its digits: the network's half of ``app.segmentation``.

``Proposal.read`` (the network's outputs in)
7. the first candidates (``app.segmentation.propose``) go through the network in
   one batch. A run of pieces that scores better than any split of it could
   (every split has two digits or more, each costing PIECE_COST at least) is surely
   one digit. A group read surely whole is one digit: no other candidate of it can
   change the answer, so none is made. A group that is not, and has several
   components, sends each component whole in a second batch; then the rest of its
   candidates, but those that cut a component read surely whole (they would take
   part of one digit), go in a third batch;
8. per group, the split into candidates that maximises the sum of
   log(likelihood) + log(shape prior): dynamic programming over the pieces. A
   candidate's likelihood is its top digit probability times its candidate score
   (the network's 1 - p(not a digit), times its "whole" output to the power 0.35:
   ``app.calibration.candidate_score``), so fragments and unions of two digits,
   which the network learnt are not one whole digit, lose to whole digits;
9. a group whose components were cut is cut again, every run of each variant's
   pieces in a last batch: along bent paths (BENT: overlapping digits part where
   their strokes meet, not where a straight line slices one) where its best split
   cuts through a component or has a digit not read surely; along other slants too
   (TILTS: touching digits that lean unlike the line often part along one of them)
   where it has such a digit. The best split of the group and those variants, less
   TILT_COST for a change of slant, wins;
10. with a pair reader (``app.pairs``), each group whose best split cuts through a
   stroke (touching digits) is read whole by it too, in one batch, and each group
   read as one digit, not surely or, wider than WIDE_WHOLE, under CERTAIN (touching
   digits merged into one shape). Where it is sure of a pair (SURE; SURE_WHOLE for
   the latter), the group is those two digits: their probabilities the reader's, their
   boxes and inputs those of the group's best split into two candidates (made then,
   for a group read surely whole); where the best split is in two and the reader says
   "not two digits" (NO_PAIR), one digit was cut in two (a 5 as "15"): the group
   is one digit, its whole candidate. A cut split in three or more whose digits but two
   neighbours are each components of their own (a touching pair and close
   neighbours) also has those two digits' ink read, in the same batch; where the
   group is no sure pair and those two are (SURE), they are the reader's digits in
   their candidates' boxes. Every two neighbouring digits of a cut split in three or
   more are read too; where the reader says "not two digits" of each (NO_PAIR), the
   strokes of one letter were cut apart (a W as "111"): the group is its whole candidate,
   made then, of any width, if it was too wide to be one (a stroke apart over them);
11. a group read as three 1s or more, two touching neighbours of which lean apart, is a
   letter's zigzag (a W, an M): read whole too (``candidates.letter_strokes``).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable

import numpy as np

from app import candidates, pairs
from app.candidates import Candidate, Digit, Group, Mark, Scorer, log_likelihoods, scored

WIDEST = 1.5  # a digit wider than this many line heights (along the slant) is unlikely
WIDE_PENALTY = 4.0  # log-prior per line height of width beyond WIDEST
SHORT_PENALTY = 6.0  # log-prior per line height of height short of 0.55
GAP_COST = 10.0  # log-prior per line height of gap inside one digit
PIECE_COST = 0.4  # log-prior per digit: a split must be worth it
# A group whose best split has a digit not read surely is also cut along these other
# slants, relative to the line's: touching digits that lean unlike the line often part
# along one of them.
TILTS = (-0.3, -0.15, 0.15, 0.3)
TILTED = tuple((tilt, False) for tilt in TILTS)  # variants: (slope change, bent)
BENT = ((0.0, True),)  # the line's slant, cuts bent (``app.segmentation._bent``)
TILT_COST = 1.5  # log-prior per unit of slope between a variant's cuts and the line's
# A group read surely as one digit but wider than this many line heights, with a
# likelihood under CERTAIN, is asked about too (step 10): two touching digits merged
# into one shape ("10" read as 6).
WIDE_WHOLE = 0.9
CERTAIN = 0.99


PairScorer = Callable[[np.ndarray], np.ndarray]  # (n, 28, 56, 1) -> (n, 101): app.pairs


# A group, a new number, a slope change and whether bent -> the group cut so.
Tilt = Callable[[Group, int, float, bool], Group]


class Proposal:
    """A line's candidate digits, made as they are needed (see the module docstring).

    ``groups`` are the line's, left to right. A group whose components are cut and
    whose best split cuts through one or has a digit not read surely gains variants
    (``tilt``: its strokes cut along bent paths or another slant, step 9), appended
    to ``groups``, every run of their pieces a candidate; then the best split of the
    group and its variants wins. ``frame_cuts``: how the image's edges cut the groups'
    strokes (``candidates.FrameCuts``, ``rejection.looks_like_digits``)."""

    def __init__(
        self,
        groups: list[Group],
        marks: list[Mark],
        tilt: Tilt | None = None,
        frame_cuts: candidates.FrameCuts = candidates.NO_CUTS,
    ):
        self.groups = list(groups)
        self.marks = marks
        self.frame_cuts = frame_cuts
        self.candidates: list[Candidate] = []
        self._inputs: list[np.ndarray] = []
        self._pending: list[int] = []  # groups that a split might still read better
        self._parted: set[int] = set()  # groups with their components whole made
        self._made: dict[int, set[tuple[int, int]]] = {}
        self._tilt = tilt
        self._bent: set[int] = set()  # the variants cut along bent paths
        self._variants = {group.number: [group.number] for group in groups}  # the line's
        self._tiltable: list[int] = []  # line's groups with every run made, no variants yet
        for group in groups:
            self._start(group)

    def _start(self, group: Group) -> None:
        """The group's first candidates: itself whole, or each component whole."""
        self._made[group.number] = set()
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
        return candidates.stacked(self._inputs)

    def line_group(self, number: int) -> int:
        """The line's group that group ``number`` is (or is a variant of)."""
        return next(line for line, variants in self._variants.items() if number in variants)

    @property
    def pieces(self) -> list[int]:
        """How many pieces each of the line's groups has, left to right."""
        return [self.groups[number].count for number in self._variants]

    def _add(self, made: Iterable[tuple[Candidate, np.ndarray]]) -> list[np.ndarray]:
        added = []
        for candidate, network_input in made:
            self.candidates.append(candidate)
            self._made[candidate.group].add((candidate.first, candidate.last))
            added.append(network_input)
        self._inputs += added
        return added

    def expand(self) -> np.ndarray:
        """Make every group's other candidates, and variants of those whose
        components are cut; their inputs."""
        added: list[np.ndarray] = []
        for number in list(self._pending):
            added += self._rest(number, [])
        for number in self._tiltable:
            added += self._tilted(number, BENT + TILTED)
        self._tiltable = []
        return candidates.stacked(added)

    def _rest(self, number: int, kept: list[tuple[int, int]]) -> list[np.ndarray]:
        """The group's candidates not made yet, but those that cut into a run of
        ``kept`` without taking it all."""
        self._pending.remove(number)
        group = self.groups[number]
        if self._tilt is not None and group.count > len(group.members):
            self._tiltable.append(number)
        return self._add(group.runs(self._made[number], kept))

    def _tilted(self, number: int, tilts: Iterable[tuple[float, bool]]) -> list[np.ndarray]:
        """The group's variants, each cut along its slant (the line's plus ``tilt``),
        bent or straight; every run of each; their inputs."""
        assert self._tilt is not None
        added = []
        for tilt, bent in tilts:
            variant = self._tilt(self.groups[number], len(self.groups), tilt, bent)
            self.groups.append(variant)
            self._variants[number].append(variant.number)
            self._made[variant.number] = set()
            if bent:
                self._bent.add(variant.number)
            added += self._add(variant.runs())
        return added

    def _wanted(self, number: int, path: list[int], log_scores: np.ndarray) -> tuple[bool, bool]:
        """Which variants of a line's group its best split ``path`` calls for: the
        bent one where that split cuts through a component or is unsure, the other
        slants where it is unsure (module docstring, step 9)."""
        unsure = not self._sure(path, log_scores)
        return unsure or self._cuts(number, path), unsure

    def read(self, score: Scorer, pair_reader: PairScorer | None = None) -> list[Digit]:
        """The digits, left to right, scoring candidates with ``score`` (network inputs
        -> their (n, 10) digit probabilities and (n,) candidate scores, or None) in
        batches: the first candidates, then for each group not read surely whole its
        components whole, then its other candidates, then variants of those whose best
        split is unsure (module docstring, step 7); then ``pair_reader``, if given, on
        the groups that call for it (step 10)."""
        probabilities, scores = np.zeros((0, 10), np.float32), None
        batch = self.inputs
        while True:
            probabilities, scores, log_scores = scored(score, batch, probabilities, scores)
            if self._pending:
                batch = self._advance(log_scores)
            elif self._tiltable:  # every run made: variants where the best split calls for them
                ends = self._ends()
                added = []
                for number in self._tiltable:
                    bent, tilted = self._wanted(
                        number, self._best_split(number, ends, log_scores)[1], log_scores
                    )
                    added += self._tilted(number, BENT * bent + TILTED * tilted)
                self._tiltable = []
                batch = candidates.stacked(added)
            else:
                return self.choose(probabilities, scores, pair_reader, score)

    def _ask(
        self,
        pair_reader: PairScorer,
        chosen: dict[int, tuple[int, list[int]]],
        log_scores: np.ndarray,
        ends: dict[tuple[int, int], list[int]],
    ) -> tuple[dict[int, tuple[int | None, tuple[np.ndarray, np.ndarray]]], dict[int, int | None]]:
        """Step 10: the pair reader on each line group whose chosen split (``_chosen``)
        cuts through a stroke or is one digit not read surely, and on every two
        neighbouring digits of a cut split in three or more. By group: its first sure
        pair and where that starts in the split (None: the whole group; else only where
        its other digits stand apart, ``_apart``); and, for a group read as one digit
        instead (a split in two the reader calls no pair, or one in more each two of
        which it does), its whole candidate (None where none was made)."""
        asked = []  # (line group, how sure the reader must be (None: no pair taken), where, ink)
        neighbours: dict[int, list[int]] = {}  # a cut split in three or more: their rows
        for number, (variant, path) in chosen.items():
            group, cut = self.groups[number], self.groups[variant]
            if self._cuts(variant, path):
                asked.append((number, pairs.SURE, None, group.ink * group.reach))
                apart = self._apart(variant, path)
                for start in range(len(path) - 1) if len(path) > 2 else ():
                    first, last = self.candidates[path[start]], self.candidates[path[start + 1]]
                    two = (cut.near >= first.first) & (cut.near <= last.last)
                    neighbours.setdefault(number, []).append(len(asked))
                    asked.append(
                        (number, pairs.SURE if start == apart else None, start, cut.ink * two)
                    )
            elif len(path) == 1 and (
                not self._sure(path, log_scores) or self._wide_doubt(path[0], log_scores)
            ):
                asked.append((number, pairs.SURE_WHOLE, None, group.ink * group.reach))
        if not asked:
            return {}, {}
        inputs = np.stack([pairs.fit_pair(ink) for *_, ink in asked])
        outputs = pair_reader(inputs[..., np.newaxis])
        read: dict[int, tuple[int | None, tuple[np.ndarray, np.ndarray]]] = {}
        whole = set()  # one digit cut in two; a letter's strokes cut apart
        for (number, sure, start, _), output in zip(asked, outputs, strict=True):
            if number in read or sure is None:
                continue
            pair = pairs.pair(output, sure)
            if pair is not None:
                read[number] = (start, pair)
            elif start is None and len(chosen[number][1]) == 2 and pairs.no_pair(output):
                whole.add(number)
        whole.update(
            n for n, rows in neighbours.items() if all(pairs.no_pair(outputs[r]) for r in rows)
        )
        return read, {n: self._whole(n, ends) for n in whole - read.keys()}

    def _wide_doubt(self, index: int, log_scores: np.ndarray) -> bool:
        """Whether a candidate is wider than WIDE_WHOLE line heights, read under CERTAIN."""
        wide = self.candidates[index].width > WIDE_WHOLE
        return wide and bool(log_scores[index] < math.log(CERTAIN))

    def _apart(self, number: int, path: list[int]) -> int | None:
        """Where two neighbouring digits start in a split of a group in three or more
        whose every other digit is components no other digit of it takes part of (the
        first such two); None where there are none, or the split is in fewer than three."""
        if len(path) < 3:
            return None
        apart = [not self._takes_part(number, index) for index in path]
        for start in range(len(path) - 1):
            if all(apart[:start]) and all(apart[start + 2 :]):
                return start
        return None

    def _advance(self, log_scores: np.ndarray) -> np.ndarray:
        """Each pending group a step on, given the scores so far; the new inputs."""
        sure = {
            (candidate.group, candidate.first, candidate.last)
            for index, candidate in enumerate(self.candidates)
            if self._sure([index], log_scores)
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
        return candidates.stacked(added)

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
        self,
        probabilities: np.ndarray,
        scores: np.ndarray | None = None,
        pair_reader: PairScorer | None = None,
        scorer: Scorer | None = None,
    ) -> list[Digit]:
        """The digits, left to right: per group, the best split into the candidates made,
        or a better one of the variants its split calls for (``_wanted``); for a group
        ``pair_reader`` reads as a pair (step 10), its best split in two with the pair's
        probabilities, or for two neighbouring digits of its split, theirs (``scorer``
        scores the split of a group read surely whole, if need be).

        ``probabilities`` (n, 10) are the classifier's for every candidate;
        ``scores`` (n,) how much each looks like one whole digit
        (``app.calibration.candidate_score``), if the network says. A candidate's
        likelihood is its top probability times its score."""
        log_scores = log_likelihoods(probabilities, scores)
        inputs, ends = self.inputs, self._ends()
        chosen = {number: self._chosen(number, ends, log_scores) for number in self._variants}
        read, wholes = (
            ({}, {}) if pair_reader is None else self._ask(pair_reader, chosen, log_scores, ends)
        )
        letters = candidates.letters(self.groups, self.candidates, chosen, probabilities)
        for number in letters:  # step 11: a letter's zigzag, read whole
            read.pop(number, None)
            wholes[number] = self._whole(number, ends)
        # A group read as one digit (step 10) whose whole was too wide to be a candidate
        # (a letter's strokes cut apart, a stroke apart over them): made now, any width.
        missing = [n for n, candidate in wholes.items() if candidate is None]
        if missing and scorer is not None:
            made = self._add(
                self.groups[n].run(0, self.groups[n].count - 1, any_width=True) for n in missing
            )
            batch = candidates.stacked(made)
            probabilities, scores, log_scores = scored(scorer, batch, probabilities, scores)
            inputs, ends = self.inputs, self._ends()
            first = len(self.candidates) - len(made)
            wholes.update(zip(missing, range(first, len(self.candidates)), strict=True))
        wholes = {n: candidate for n, candidate in wholes.items() if candidate is not None}
        # Each group read whole as a pair: its split in two, made now if it was read surely whole.
        in_two = {
            n: self._split_in_two(n, ends, log_scores) for n, (at, _) in read.items() if at is None
        }
        unsplit = [n for n, two in in_two.items() if two is None]
        if unsplit and scorer is not None:
            made = [self._add(self.groups[n].runs(self._made[n])) for n in unsplit]
            batch = candidates.stacked([each for added in made for each in added])
            probabilities, scores, log_scores = scored(scorer, batch, probabilities, scores)
            inputs, ends = self.inputs, self._ends()
            in_two.update((n, self._split_in_two(n, ends, log_scores)) for n in unsplit)

        def score(index: int) -> float:
            return 1.0 if scores is None else float(scores[index])

        def own(indices: list[int]) -> list[Digit]:  # candidates as the network reads them
            return [
                Digit(probabilities[i], inputs[i], self.candidates[i].box, score(i))
                for i in indices
            ]

        digits = []
        for number, (_, path) in chosen.items():
            if number in wholes:  # no pair to the reader (step 10): one digit, the group
                path = [wholes[number]]
            elif number in read:  # read as a pair (step 10): its split in two, or two of it
                start, pair = read[number]
                if start is None:
                    two, before, after = in_two[number], [], []
                else:
                    two, before, after = path[start : start + 2], path[:start], path[start + 2 :]
                if two is not None:
                    read_as_pair = [
                        Digit(digit, inputs[i], self.candidates[i].box, score(i))
                        for digit, i in zip(pair, two, strict=True)
                    ]
                    digits += own(before) + read_as_pair + own(after)
                    continue
            digits += own(path)
        return digits

    def _chosen(
        self, number: int, ends: dict[tuple[int, int], list[int]], log_scores: np.ndarray
    ) -> tuple[int, list[int]]:
        """A line group's best split, or a better one of the variants its split calls
        for (``_wanted``), less their change of slant's cost; the first of equals: the
        group (or variant) and its candidates."""
        path = self._best_split(number, ends, log_scores)[1]
        bent, tilted = self._wanted(number, path, log_scores)
        considered = [number] + [
            n for n in self._variants[number][1:] if (bent if n in self._bent else tilted)
        ]
        if len(considered) == 1:
            return number, path
        splits = [self._best_split(n, ends, log_scores) for n in considered]
        totals = [
            total - self._tilt_cost(number, n)
            for (total, _), n in zip(splits, considered, strict=True)
        ]
        best = int(np.argmax(totals))
        return considered[best], splits[best][1]

    def _whole(self, number: int, ends: dict[tuple[int, int], list[int]]) -> int | None:
        """The candidate that is a line group whole, among those made (``ends``:
        ``_ends()``); None where none was (the group too wide for one digit)."""
        last = self.groups[number].count - 1
        wholes = [i for i in ends.get((number, last), ()) if self.candidates[i].first == 0]
        return wholes[0] if wholes else None

    def _tilt_cost(self, number: int, variant: int) -> float:
        return TILT_COST * abs(self.groups[variant].slant.slope - self.groups[number].slant.slope)

    def _split_in_two(
        self, number: int, ends: dict[tuple[int, int], list[int]], log_scores: np.ndarray
    ) -> list[int] | None:
        """A line group's best split into two candidates among those made, its own or
        a variant's (less its change of slant's cost), or None where none has been
        made."""
        best: tuple[float, list[int] | None] = (-math.inf, None)
        for variant in self._variants[number]:
            last = self.groups[variant].count - 1
            for second in ends.get((variant, last), ()):
                start = self.candidates[second].first
                for first in ends.get((variant, start - 1), ()) if start else ():
                    if self.candidates[first].first != 0:
                        continue
                    total = (
                        self._total(first, log_scores)
                        + self._total(second, log_scores)
                        - self._tilt_cost(number, variant)
                    )
                    if total > best[0]:
                        best = (total, [first, second])
        return best[1]

    def _cuts(self, number: int, path: list[int]) -> bool:
        """Whether a split of the group takes part of a component (a cut through ink)."""
        return any(self._takes_part(number, index) for index in path)

    def _takes_part(self, number: int, index: int) -> bool:
        """Whether candidate ``index`` of the group shares a component with its other
        pieces: takes part of one, not all of it."""
        labels, candidate = self.groups[number].labels, self.candidates[index]
        taken = set(labels[candidate.first : candidate.last + 1])
        return bool(taken.intersection(labels[: candidate.first] + labels[candidate.last + 1 :]))

    def _sure(self, path: list[int], log_scores: np.ndarray) -> bool:
        """Whether each digit of a split (its candidates) is surely one on its own: any
        split of a run of pieces scores -2 PIECE_COST at best, so a run that scores
        better is surely one digit."""
        return all(self._total(index, log_scores) > -2 * PIECE_COST for index in path)

    def _ends(self) -> dict[tuple[int, int], list[int]]:
        """The candidates made, by their group and last piece."""
        ends: dict[tuple[int, int], list[int]] = {}
        for index, candidate in enumerate(self.candidates):
            ends.setdefault((candidate.group, candidate.last), []).append(index)
        return ends

    def _best_split(
        self, number: int, ends: dict[tuple[int, int], list[int]], log_scores: np.ndarray
    ) -> tuple[float, list[int]]:
        """The group's best split into the candidates made (``ends``: ``_ends()``):
        its score and its candidates, left to right."""
        group = self.groups[number]
        best = [0.0] + [-math.inf] * group.count  # best[k]: the first k pieces read
        back = [-1] * (group.count + 1)
        for end in range(group.count):
            for index in ends.get((number, end), ()):
                total = best[self.candidates[index].first] + self._total(index, log_scores)
                if total > best[end + 1]:
                    best[end + 1], back[end + 1] = total, index
        path, end = [], group.count
        while end > 0:
            path.append(back[end])
            end = self.candidates[back[end]].first
        return best[group.count], path[::-1]


def _prior(width: float, height: float) -> float:
    """log plausibility of a digit's shape, its sides in line heights."""
    return (
        -WIDE_PENALTY * max(0.0, width - WIDEST)
        - SHORT_PENALTY * max(0.0, 0.55 - height)
        - PIECE_COST
    )
