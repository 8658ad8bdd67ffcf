"""Printed lines on the paper: ruled and squared paper, a form's box, an underline.

Handwriting is often written on printed lines, and a digit cropped from an
exercise book or a form's cell brings them along; left in, they join the digit's
strokes and the network sees a grid, a frame or a bar. ``long_runs`` and
``drifting`` find straight horizontal runs of ink that wobble by a row either way
(``app.components`` erases a line of digits' rules with them too).

``across`` tells which lines to erase from an upload of one digit (step 5 of
``app.preprocessing``, in ``app.ink_blobs.digit_ink``) or of a line of digits
(``app.segmentation``, before its components). A **rule** runs, straight, across at
least RULE_SPAN of the image, horizontally or upright; runs on past the writing
left without the lines by RULE_MARGIN of the image (and 2 px) at both ends; and is
thin: the ink across it, at the lower quartile along it, is at most RULE_THINNESS
of the writing's pen. A digit's own straight stroke fails one of these: a tight
crop's 7 or 5 has its stem or body at its bar's end, and a bar is as thick as the
pen. A **box** round the writing (a line on each of its four sides) need only be
about as long as it (FRAME_SLACK: a digit written past its box) and thinner than
FRAME_THINNESS of the pen. Upright lines count only beside flat ones (a box, a
grid): alone, a straight upright stroke is more likely a digit's (a 4's stem beside
a shorter arm); one running from a flat line to the next is a side of a form's
boxes in a row (a comb), however short. With no rule across RULE_SPAN of the image,
a closed box narrower than that (a 1's cell cropped with paper round it) is looked
for among the dark strokes: lines across BOX_SPAN of it, each running from a line
of the other orientation to another. Where a stroke crosses a line or lies on it,
the ink across it is thicker than the line: that stays. Images under MIN_SIDE
a side hold no rules: a 16×16 scan's strokes are as thin as one. Lines that drift
by more than a row or two across the image (on a 200 px image, a page turned by
more than about half a degree) are not found, and stay.
"""

from __future__ import annotations

import functools
import itertools

import numpy as np
from scipy import ndimage

from app import ink_blobs

RULE_SPAN = 0.75  # a rule runs across at least this share of the image ...
RULE_MARGIN = 0.04  # ... past the writing by this share of it and 2 px at both ends,
RULE_THINNESS = 0.5  # ... and is at most this share of the writing's pen width thick;
FRAME_THINNESS = 0.75  # but a box round the writing need only be this thin,
FRAME_SLACK = 0.1  # and as long as the writing but this share of it at either end
BOX_SPAN = 0.4  # a box round the writing narrower than RULE_SPAN: its sides this long
MIN_SIDE = 32  # no rule in a smaller image
MAX_LINES = 128  # more lines of one orientation than this: noise, not paper (bounds the cost)


def long_runs(mask: np.ndarray, length: int) -> np.ndarray:
    """The pixels of ``mask`` in horizontal runs at least ``length`` long."""
    padded = np.zeros((mask.shape[0], mask.shape[1] + 2), dtype=np.int8)
    padded[:, 1:-1] = mask
    steps = np.diff(padded, axis=1)
    starts, ends = np.argwhere(steps == 1), np.argwhere(steps == -1)  # same order
    long = ends[:, 1] - starts[:, 1] >= length
    runs = np.zeros_like(mask)
    for (row, start), (_, end) in zip(starts[long], ends[long], strict=True):
        runs[row, start:end] = True
    return runs


def drifting(mask: np.ndarray, length: int) -> np.ndarray:
    """The pixels of ``mask`` on horizontal lines at least ``length`` long that drift
    by a row or two (a slightly tilted page)."""
    band = mask.copy()
    band[1:] |= mask[:-1]
    band[:-1] |= mask[1:]
    runs = np.zeros_like(mask)
    rows = np.flatnonzero(np.count_nonzero(band, axis=1) >= length)  # most have none
    if rows.size:
        runs[rows] = long_runs(band[rows], length)
    return runs & mask


def erase(ink: np.ndarray, strokes: np.ndarray) -> np.ndarray | None:
    """Erase the rules ``across`` finds: their ink goes to 0, in place; the strokes
    without them, or None when there are none (nothing changed)."""
    lines = across(ink, strokes)
    if lines is None:
        return None
    ink[lines] = 0.0
    return strokes & ~lines


def across(ink: np.ndarray, strokes: np.ndarray) -> np.ndarray | None:
    """The pixels of the rules to erase from an upload of a digit or a line of
    digits (its ink and stroke maps), crossings left out; None when there are none."""
    height, width = strokes.shape
    if min(height, width) < MIN_SIDE:
        return None
    faint = strokes | (ink > ink_blobs.FAINT_INK)
    wide, tall = round(RULE_SPAN * width), round(RULE_SPAN * height)
    flat = drifting(faint, wide)
    if flat.any():
        flat_lines = _Lines(flat, faint, axis=1)
        if len(flat_lines.boxes) > MAX_LINES:
            return None  # noise, not paper
        # Upright lines as tall as RULE_SPAN of the image, and those from one flat line
        # to the next (the sides of a form's boxes in a row, a comb), however short.
        upright = drifting(faint.T, tall).T
        gap = flat_lines.least_gap()
        if gap < tall:
            short = _Lines(drifting(faint.T, gap).T & ~upright, faint, axis=0)
            if len(short.boxes) <= MAX_LINES:
                upright |= short.where(flat_lines.joined)
    else:
        closed = _closed_box(strokes, faint)
        if closed is None:
            return None
        flat, upright = closed
        flat_lines = _Lines(flat, faint, axis=1)
    upright_lines = _Lines(upright, faint, axis=0)
    if len(upright_lines.boxes) > MAX_LINES:
        return None
    # The writing: the strokes off the lines and their next pixel across (where a
    # tilted line leaves its band of rows, as its ends may).
    rest = strokes & ~ink_blobs.dilated(flat, 1) & ~ink_blobs.dilated(upright, 1)
    box = ink_blobs.bounds(rest)
    if box is None:
        return None  # nothing but lines
    pen = ink_blobs.pen_width(rest)
    if flat_lines.frame(box[:2], box[2:]) and upright_lines.frame(box[2:], box[:2]):
        # Boxes round the writing: their sides need only be about as long as it.
        margins = (-FRAME_SLACK * (box[3] - box[2]), -FRAME_SLACK * (box[1] - box[0]))
        thinnest = FRAME_THINNESS * pen
    else:
        margins, thinnest = (2 + RULE_MARGIN * width, 2 + RULE_MARGIN * height), RULE_THINNESS * pen
    flat = flat_lines.rules(box[2:], margins[0], thinnest)
    if not flat.any():
        return None
    return flat | upright_lines.rules(box[:2], margins[1], thinnest)


def _closed_box(strokes: np.ndarray, faint: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    """A box shorter than RULE_SPAN of the image (a narrow digit's cell cropped with
    paper round it): flat and upright lines of ``strokes`` (a form's box is printed
    dark) across BOX_SPAN of it or more, each running from a line of the other
    orientation to another; their pixels, or None."""
    height, width = strokes.shape
    flat_mask = drifting(strokes, round(BOX_SPAN * width))
    if not flat_mask.any():
        return None  # most uploads: none of the cost below
    upright_mask = drifting(strokes.T, round(BOX_SPAN * height)).T
    if not upright_mask.any():
        return None
    flat = _Lines(flat_mask, faint, axis=1)
    upright = _Lines(upright_mask, faint, axis=0)
    if not (2 <= len(flat.boxes) <= MAX_LINES and 2 <= len(upright.boxes) <= MAX_LINES):
        return None
    ends, sides = flat.where(upright.joined), upright.where(flat.joined)
    return (ends, sides) if ends.any() and sides.any() else None


class _Lines:
    """Straight lines of one orientation, running along ``axis``: each one's box,
    and how thick the ink (``faint``) is across it: the lower quartile along it (a
    stroke that crosses it or runs along it makes it thicker there)."""

    def __init__(self, lines: np.ndarray, faint: np.ndarray, axis: int):
        self.axis, self._faint = axis, faint
        self.labels, _ = ndimage.label(lines, structure=ink_blobs.EIGHT_NEIGHBOURS)
        self.boxes = ndimage.find_objects(self.labels)

    @functools.cached_property
    def runs(self) -> np.ndarray:
        """Each pixel's run of ink across the lines."""
        return _run_lengths(self._faint, 1 - self.axis)

    @functools.cached_property
    def thick(self) -> np.ndarray:
        """Each line's thickness, by label (0: none)."""
        thick = [0.0]
        for number, box in enumerate(self.boxes, start=1):
            own = np.where(self.labels[box] == number, self.runs[box], np.inf)
            thinnest = own.min(axis=1 - self.axis)  # at each place along the line
            thick.append(float(np.percentile(thinnest[np.isfinite(thinnest)], 25)))
        return np.array(thick)

    def least_gap(self) -> int:
        """The fewest rows between two of these (flat) lines one above the other,
        their thickness left out; a huge number when there are not two."""
        boxes = sorted(self.boxes, key=lambda box: box[0].start)
        gaps = [b[0].start - a[0].stop for a, b in itertools.pairwise(boxes)]
        return max(3, min(gaps)) if gaps else 1 << 30

    def joined(self, other: tuple[slice, slice]) -> bool:
        """Whether a line of the other orientation (its box) runs from one of these
        lines to another: each of its ends within 2 px of one, which reaches it."""
        along, position = other[1 - self.axis], other[self.axis]
        ends = [False, False]
        for box in self.boxes:
            lies, runs = box[1 - self.axis], box[self.axis]
            if runs.start - 2 <= position.start and position.stop <= runs.stop + 2:
                ends[0] |= lies.start - 2 <= along.start <= lies.stop + 2
                ends[1] |= lies.start - 2 <= along.stop - 1 <= lies.stop + 2
        return all(ends)

    def where(self, wanted) -> np.ndarray:
        """The pixels of the lines whose box is ``wanted``."""
        keep = np.array([False, *(wanted(box) for box in self.boxes)])
        return keep[self.labels]

    def frame(self, across: tuple[int, int], along: tuple[int, int]) -> bool:
        """Whether a line lies at each side of the writing (its first and end index
        ``across`` the lines), each about as long as the writing ``along`` them (but
        FRAME_SLACK of it at either end: a digit written past its box)."""
        sides = [False, False]
        reach = 0.25 * (across[1] - across[0])
        slack = FRAME_SLACK * (along[1] - along[0])
        for box in self.boxes:
            lies, runs = box[1 - self.axis], box[self.axis]
            if runs.start < along[0] + slack and runs.stop > along[1] - slack:
                middle = (lies.start + lies.stop) / 2
                sides[0] |= middle <= across[0] + reach
                sides[1] |= middle >= across[1] - reach
        return all(sides)

    def rules(self, extent: tuple[int, int], margin: float, thinnest: float) -> np.ndarray:
        """The pixels of the lines that run past ``extent`` (the writing's first and
        end index along them) by ``margin`` at both ends, at most ``thinnest`` thick;
        but where the ink across them is thicker than they are (a stroke crosses them,
        or lies on them), which stays."""
        keep = np.zeros(len(self.boxes) + 1, dtype=bool)
        for number, box in enumerate(self.boxes, start=1):
            along = box[self.axis]
            keep[number] = (
                self.thick[number] <= thinnest
                and along.start <= extent[0] - margin
                and along.stop >= extent[1] + margin
            )
        return keep[self.labels] & (self.runs <= self.thick[self.labels] + 1)


def _run_lengths(mask: np.ndarray, axis: int) -> np.ndarray:
    """Each pixel's run of ``mask`` along ``axis`` (0 off the mask)."""
    runs = np.moveaxis(mask, axis, 0)
    size = runs.shape[0]
    index = np.arange(size).reshape(-1, *([1] * (runs.ndim - 1)))
    last_off = np.maximum.accumulate(np.where(runs, -1, index), axis=0)
    next_off = np.minimum.accumulate(np.where(runs, size, index)[::-1], axis=0)[::-1]
    return np.moveaxis(np.where(runs, next_off - last_off - 1, 0), 0, axis)
