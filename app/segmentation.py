"""One line of handwritten digits -> each digit's network input and box.

Classic over-segmentation, in two halves around the network's answers:

``propose`` (no network)
1. the ink of the whole line: ``preprocessing.ink_strength``, every mark kept (a
   decimal point must survive to be told apart from a digit);
2. components (``app.components``): printed lines across the image erased first
   (squared paper, a form's row of boxes: ``app.rules``), the stroke blobs, specks
   dropped, at most MAX_COMPONENTS of them; rules (ruled paper, an underline, a
   form's box) erased except where a stroke crosses them; the line's digit height H;
3. marks: a component under MARK_HEIGHT × H that does not sit over a digit (a
   decimal point, a comma, a dash) is no digit: it is listed, with its box, and
   skipped; but short strokes over one another that stand as tall together, one
   of them neither a dash nor a point, are a digit (a small 5 written in two);
4. groups: digit components that overlap horizontally or nearly touch are one
   group (a 4 or a 5 written in two strokes, or two digits: the network decides
   below); short pieces over a digit, within a whole digit's height of its foot
   (a 5's or a 7's bar, a 2's flat base written apart), join it;
5. pieces: each component of a group, a wide one (touching digits) cut along the
   writing's slant at the minima of its ink profile and where digits of even width
   would meet, but never through solid ink (SOLID); straight along the slant, or
   (a variant tried where a split cuts through ink) bent to cross as little ink as
   it can (``_bent``);
6. candidates: runs of up to MAX_PIECES consecutive pieces, and each component
   and each group whole however many pieces it was cut into, each normalised by
   ``preprocessing.fit_to_mnist`` exactly as /predict normalises one digit. At
   first only each group whole, or, for a group too wide for one digit, each of
   its components whole.

``Proposal.read`` (the network's outputs in): steps 7-9 in ``app.splits``, which
reads the candidates in batches and keeps each group's best split.

No web framework in here: errors are ``PreprocessingError`` subclasses.
"""

from __future__ import annotations

import dataclasses
import itertools
import math

import numpy as np
from PIL import Image
from scipy import ndimage

from app import components, ink_blobs, orientation, preprocessing, rules
from app.candidates import Box, FrameCuts, Group, Mark, Piece, Slant, fewest_digits
from app.splits import Proposal

MARK_HEIGHT = 0.45  # shorter than this share of the line's height: a mark, unless over a digit
# A short stroke over a digit for this share of its width is part of it: any at all (a
# 5's bar written apart may run on almost wholly right of its body).
OVER = 0.0
# A short stroke over the upper three quarters of a digit is part of it if it weighs
# this share of the digit's heaviest stroke: a faint 7's bar breaks into dashes of
# 2-4 %. At its foot, components.HEAVY: a ruled line's remnants weigh little.
UPPER_PART = 0.02
FOOT_BELOW = 0.3  # a piece of a digit lies within its group's box, give or take this many H
NEAR = 0.15  # components closer than this many line heights are one group
WIDE = 0.4  # a component wider than this many line heights may hold touching digits (11)
CUT_SPACING = 0.08  # cuts at least this many line heights apart
# No cut where the ink runs along this share of the line's height (the profile smoothed
# over a tenth of it): that slices a block, such as a 1 stretched to fill its box as
# postal and form scans hold digits, into 1s; two digits do not meet so.
SOLID = 0.85
PATH_REACH = 0.3  # a cut bends up to this many line heights from straight
PATH_BEND = 0.01  # cost per column bent, per row, against an ink pixel's 1
MAX_SLANT = 0.6  # the steepest lean of the writing considered, columns per row
SLANT_STRIP = 0.5  # the slant is measured within strips this many line heights wide


class TooManyDigitsError(preprocessing.PreprocessingError):
    """More digits than MAX_DIGITS: a page of text, not a number."""


def _cuts(profile: np.ndarray, height: float) -> list[int]:
    """Where a wide component may hold two digits or more: its column profile's
    minima, and where digits of an even width would meet (overlapping digits leave
    no minimum there); none through solid ink (SOLID)."""
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
        if (
            margin <= column <= width - margin
            and profile[column] <= SOLID * height
            and all(abs(column - c) >= margin for c in chosen)
        ):
            chosen.append(column)
    return sorted(chosen)


# A line written with a pen at most two pixels wide (``components.find``'s width: 2.0 for
# such strokes, 3.0 at three) and at least HAIRLINE_TALL widths tall is a hairline, often
# broken into dots and dashes by the scan: its strokes are grown by BRIDGE px (a pen of
# 7 px) before they are grouped, as /predict grows a hairline digit (``app.strokes``).
# 16x16 and 8x8 bitmaps, a pen of 1-2 px, are 8 or fewer widths tall; small print grown
# is rows of blobs, HAIRLINE_LINES lines tall or more. Single digits of model.world's
# broken hairlines read by /read, seed 5: 16 -> 87 of 100 (92 without HAIRLINE_LINES;
# BRIDGE 1 · 2 · 4: 55 · 84 · 94); docs/reading.md#hairlines.
HAIRLINE_PEN = 2.6
HAIRLINE_TALL = 16
HAIRLINE_LINES = 2
BRIDGE = 3


def _grown_hairline(
    ink: np.ndarray, strokes: np.ndarray, blobs: components.Blobs, pen: float
) -> tuple[np.ndarray, np.ndarray, components.Blobs, float] | None:
    """A line written with a hairline (HAIRLINE_PEN) with its strokes grown by BRIDGE
    px, what they cover taken for ink, and its blobs and pen width then; None for any
    other image, and for several lines of print (taller than HAIRLINE_LINES lines)."""
    rows = np.flatnonzero(strokes.any(axis=1))
    extent = rows[-1] - rows[0] + 1
    if pen > HAIRLINE_PEN or extent < HAIRLINE_TALL * pen:
        return None
    if blobs.top.size >= components.MAX_COMPONENTS:  # a page of print: no more work
        return None
    grown = ink_blobs.dilated(strokes, BRIDGE)
    grown_ink = np.where(grown & ~strokes, np.float32(1.0), ink)
    grown_blobs, grown_pen = components.find(grown_ink, grown)
    if extent > HAIRLINE_LINES * components.line_height(grown_blobs, grown_pen):
        return None
    return grown_ink, grown, grown_blobs, grown_pen


def _mark_kind(width: int, height: int, line: float) -> str:
    if width >= 2 * height:
        return "dash"
    if max(width, height) <= 0.35 * line:
        return "point"
    return "mark"


def _stacked(blobs: components.Blobs, line: float, tall: np.ndarray) -> np.ndarray:
    """Short strokes that together stand as tall as a digit: a small 5 written as its
    body and its bar apart, each under MARK_HEIGHT. Those of a run of short strokes
    over one another, beside no tall one, whose joint height is MARK_HEIGHT or more,
    one of them neither a dash nor a point (a colon or an equals sign stays marks)."""
    stacked = np.zeros(len(tall), dtype=bool)
    if np.count_nonzero(~tall) < 2:
        return stacked  # most lines: no two short strokes to stand together
    lefts, rights = blobs.left[tall], blobs.right[tall]
    runs: list[list[int]] = []  # short strokes over one another, left to right
    reach = 0  # the last run's right edge
    for index in sorted(np.flatnonzero(~tall), key=lambda i: blobs.left[i]):
        left, right = int(blobs.left[index]), int(blobs.right[index])
        if (np.minimum(right, rights) > np.maximum(left, lefts)).any():
            continue  # over a digit: a 5's bar or grain on it (_groups)
        if runs and left <= reach:
            runs[-1].append(int(index))
            reach = max(reach, right)
        else:
            runs.append([int(index)])
            reach = right
    for run in runs:
        height = max(blobs.bottom[i] for i in run) - min(blobs.top[i] for i in run)
        kinds = {_mark_kind(int(blobs.width[i]), int(blobs.height[i]), line) for i in run}
        if len(run) > 1 and height >= MARK_HEIGHT * line and "mark" in kinds:
            stacked[run] = True
    return stacked


def _groups(blobs: components.Blobs, line: float) -> tuple[list[list[int]], list[int]]:
    """Digit groups (lists of blob indices, left to right) and the marks' indices."""
    tall = blobs.height >= MARK_HEIGHT * line
    tall |= _stacked(blobs, line, tall)
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
            if overlap >= OVER * (right - left) and within and (flat or not low):
                # Part of the digit if it weighs something (UPPER_PART), else grain on it.
                least = components.HEAVY if low else UPPER_PART
                if blobs.mass[index] >= least * max(blobs.mass[i] for i in group):
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


def _bent(mask: np.ndarray, straight: np.ndarray, line: float) -> np.ndarray:
    """Cuts bent to cross as little ink as they can. Each cut (a row of ``straight``:
    per row of the component's box, the first column right of it) may move a column
    a row, up to PATH_REACH line heights from straight, each column away costing
    PATH_BEND a row against an ink pixel's 1: the cheapest path down the rows, by
    dynamic programming, all cuts at once. Two overlapping digits part where their
    strokes meet, not where a straight line slices the one leaning into the other."""
    count, rows = straight.shape
    reach = max(1, round(PATH_REACH * line))
    offsets = np.arange(-reach, reach + 1)
    columns = straight[:, :, np.newaxis] + offsets  # (cuts, rows, offsets)
    inside = (columns >= 0) & (columns < mask.shape[1])
    cost = np.zeros(columns.shape, np.float32)
    cost[inside] = mask[np.nonzero(inside)[1], columns[inside]]
    cost += PATH_BEND * np.abs(offsets)
    total = cost[:, 0]
    moves = np.zeros(columns.shape, np.int8)  # how each row's offset was reached
    for row in range(1, rows):
        from_left = np.concatenate([np.full((count, 1), np.inf), total[:, :-1]], axis=1)
        from_right = np.concatenate([total[:, 1:], np.full((count, 1), np.inf)], axis=1)
        best = np.minimum(total, np.minimum(from_left, from_right))  # straight on ties
        moves[:, row] = np.where(best == total, 0, np.where(best == from_left, 1, -1))
        total = cost[:, row] + best
    at = np.argmin(total, axis=1)
    path = np.empty((count, rows), np.int64)
    for row in range(rows - 1, -1, -1):
        path[:, row] = at
        at = at - moves[np.arange(count), row, at]
    return straight + offsets[path]


def _pieces(
    group: list[int], blobs: components.Blobs, line: float, slant: Slant, bent: bool = False
) -> tuple[list[Piece], list[float]]:
    """A group's pieces, left to right, and the gap before each, in line heights (0
    where pieces overlap). Its wide components are cut (``_cuts``) along the slant,
    or, if ``bent``, along paths bent to cross as little ink as they can (``_bent``)."""
    pieces = []
    for index in group:
        label = int(blobs.ids[index])
        top, bottom = int(blobs.top[index]), int(blobs.bottom[index])
        left, right = int(blobs.left[index]), int(blobs.right[index])
        mask = blobs.labels[top:bottom, left:right] == label
        sheared = slant.columns(top, bottom, left, right)
        own = sheared[mask]
        first, end = float(own.min()), float(own.max()) + 1
        cuts = []
        if end - first > WIDE * line:
            bins = np.floor(own - first).astype(np.int64)
            cuts = _cuts(np.bincount(bins, minlength=int(end - first)), line)
        if not cuts:
            pieces.append(Piece(label, first, end, first, end, top, left, mask))
            continue
        # Each pixel's piece: how many cuts lie left of it along the slant (float32
        # compares). Bent: each cut's first column right of it, per row, moved by
        # ``_bent``, and the pieces counted again from those columns.
        piece_of = np.searchsorted(
            np.array([first + c for c in cuts], np.float32), sheared, "right"
        )
        if bent:
            cut = np.arange(len(cuts))[:, np.newaxis, np.newaxis]
            paths = np.maximum.accumulate(_bent(mask, (piece_of <= cut).sum(axis=2), line), axis=0)
            piece_of = (np.arange(mask.shape[1]) >= paths[:, :, np.newaxis]).sum(axis=0)
        bounds = [first, *(first + c for c in cuts), end]
        for number, span in enumerate(itertools.pairwise(bounds)):
            part = mask & (piece_of == number)
            held = sheared[part]
            # Along a steep slant a stroke's neighbouring pixels lie over a column
            # apart: two cuts in such a gap leave a piece with no pixel, dropped.
            if held.size:
                inked = float(held.min()), float(held.max()) + 1
                # Where it lies along the slant: between its cuts, or its ink if bent.
                start, stop = inked if bent else span
                pieces.append(Piece(label, start, stop, *inked, top, left, part))
    pieces.sort(key=lambda piece: piece.first + piece.end)  # by their middle
    gaps = [0.0]  # before the first piece: none
    reach = pieces[0].end
    for after in pieces[1:]:
        gaps.append(max(0.0, after.first - reach) / line)
        reach = max(reach, after.end)
    return pieces, gaps


def propose(image: Image.Image, max_digits: int) -> Proposal:
    """An opened image of one line of digits -> its candidates, each group whole first."""
    size = orientation.upright_size(image)  # before decoding, which may shrink it in place
    return propose_decoded(preprocessing.decode(image), size, max_digits)


def propose_decoded(decoded: Image.Image, size: tuple[int, int], max_digits: int) -> Proposal:
    """``propose`` on what ``preprocessing.decode`` made of an upload whose upright
    size is ``size`` (the boxes are in its pixels)."""
    width, height = size
    scale = (width / decoded.width, height / decoded.height)
    strength = preprocessing.ink_strength(preprocessing.page_levels(decoded))
    ink, strokes = strength.ink, strength.strokes
    slopes = rules.turned(ink_blobs.with_faint(ink, strokes))  # of a page askew
    without_lines = rules.erase(ink, strokes, slopes)  # a form's boxes, squared paper
    if without_lines is not None:
        strokes = without_lines
    blobs, pen = components.find(ink, strokes)
    grown = _grown_hairline(ink, strokes, blobs, pen)
    if grown is not None:
        ink, strokes, blobs, pen = grown
        strength = dataclasses.replace(strength, ink=ink)
    line = components.line_height(blobs, pen)
    cleaned = components.without_rules(strokes, blobs, line, slopes[0])
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
    grouped = np.array([i for group in groups for i in group])
    top, bottom = int(blobs.top[grouped].min()), int(blobs.bottom[grouped].max())
    marks = [
        Mark(_mark_kind(int(blobs.width[i]), int(blobs.height[i]), line), _box(blobs, i, scale))
        for i in mark_indices
        if not flat[i]
        and top - line / 2 <= (blobs.top[i] + blobs.bottom[i]) / 2 <= bottom + line / 2
    ]
    drawn = (blobs, strength, strokes, line, scale)
    frame_cuts = FrameCuts(
        max(
            np.count_nonzero(blobs.left[grouped] <= 0),
            np.count_nonzero(blobs.right[grouped] >= strokes.shape[1]),
        ),
        np.count_nonzero((blobs.top[grouped] <= 0) & (blobs.bottom[grouped] >= strokes.shape[0])),
    )

    def tilted(group: Group, number: int, tilt: float, bent: bool) -> Group:
        other = Slant(slant.slope + tilt, slant.middle)
        other_pieces, other_gaps = _pieces(group.members, blobs, line, other, bent)
        return Group(number, group.members, other_pieces, other_gaps, *drawn, other)

    return Proposal(
        [
            Group(number, members, pieces[number], gaps[number], *drawn, slant)
            for number, members in enumerate(groups)
        ],
        marks,
        tilted,
        frame_cuts,
    )


def _box(blobs: components.Blobs, index: int, scale: tuple[float, float]) -> Box:
    box = Box(
        int(blobs.left[index]),
        int(blobs.top[index]),
        int(blobs.width[index]),
        int(blobs.height[index]),
    )
    return box.scaled(*scale)
