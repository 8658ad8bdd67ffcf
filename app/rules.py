"""Printed lines on the paper: ruled and squared paper, a form's box, an underline.

Handwriting is often written on printed lines, and a digit cropped from an
exercise book or a form's cell brings them along; left in, they join the digit's
strokes and the network sees a grid, a frame or a bar. ``long_runs`` and
``drifting`` find straight horizontal runs of ink that wobble by a row either way
(``app.components`` erases a line of digits' rules with them too), on a page
turned by a few degrees too: ``turned`` finds how far its lines rise and lean
(``tilt``, for each orientation), and ``drifting`` shifts each column by that much
to look for them level.

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
of the other orientation to another (or past it by OVERRUN: a form's lines may
cross at the corners). Where a stroke crosses a line or lies on it,
the ink across it is thicker than the line: that stays. Images under MIN_SIDE
a side hold no rules: a 16×16 scan's strokes are as thin as one. Flat and upright
lines are each looked for at their own slope (a photo's perspective turns them
apart); a page turned by more than about 7 degrees keeps its lines.
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
OVERRUN = 0.15  # ... and each may run past its corners by this share of its length
MIN_SIDE = 32  # no rule in a smaller image
MAX_LINES = 128  # more lines of one orientation than this: noise, not paper (bounds the cost)
STRIP = 8  # columns: a line rising a row in this many (7 degrees) is still followed
CUT_THICKNESS = 3.0  # px: a line's piece a turned page's corner cut short
PIECE_ROWS = 8  # a printed line: ink within a row of at most this many rows of a strip


def long_runs(mask: np.ndarray, length: int) -> np.ndarray:
    """The pixels of ``mask`` in horizontal runs at least ``length`` long."""
    height, width = mask.shape
    padded = np.zeros((height, width + 2), dtype=np.int8)
    padded[:, 1:-1] = mask
    steps = np.diff(padded, axis=1)
    starts, ends = np.flatnonzero(steps == 1), np.flatnonzero(steps == -1)  # same order
    long = ends - starts >= length  # flat indices into (height, width + 1): same row
    marks = np.zeros(height * (width + 1), dtype=np.int8)
    marks[starts[long]] = 1
    marks[ends[long]] = -1
    return np.cumsum(marks, dtype=np.int8).reshape(height, width + 1)[:, :width] > 0


def drifting(mask: np.ndarray, length: int, rise: float = 0.0) -> np.ndarray:
    """The pixels of ``mask`` on horizontal lines at least ``length`` long that rise
    by ``rise`` rows a column (a turned page, as ``tilt`` finds it) and wobble by a
    row either way. A turned page's lines are looked for with its columns shifted
    up or down to make them level, each pixel moved whole, then shifted back."""
    height, width = mask.shape
    lifts = np.round(rise * (np.arange(width) - (width - 1) / 2)).astype(np.intp)
    lift = int(np.abs(lifts).max()) if width else 0
    if lift == 0:
        return _level(mask, length)
    index = (np.arange(height)[:, None] - lifts + lift, np.arange(width))
    level = np.zeros((height + 2 * lift, width), dtype=bool)
    level[index] = mask
    return _level(level, length, stepped=True)[index]


def _level(mask: np.ndarray, length: int, stepped: bool = False) -> np.ndarray:
    """``drifting`` on a level page; ``stepped``: one made level by shifting its
    columns, where a line steps a row up or down at each rounding (and may leave a
    pixel's gap there)."""
    band = _rows_either_way(mask)
    runs = np.zeros_like(mask)
    rows = np.flatnonzero(np.count_nonzero(band, axis=1) >= length)  # most have none
    if rows.size:
        if not stepped:
            runs[rows] = long_runs(band[rows], length)
            return runs & mask
        rows_band = band[rows]
        rows_band[:, 1:-1] |= rows_band[:, :-2] & rows_band[:, 2:]  # a pixel's gap
        found = long_runs(rows_band, length)
        for off in (-1, 0, 1):  # and the line's pixels a row off
            inside = (rows + off >= 0) & (rows + off < len(mask))
            runs[rows[inside] + off] |= found[inside]
    return runs & mask


def erase(
    ink: np.ndarray, strokes: np.ndarray, slopes: tuple[float, float] | None = None
) -> np.ndarray | None:
    """Erase the rules ``across`` finds: their ink goes to 0, in place; the strokes
    without them, or None when there are none (nothing changed)."""
    lines = across(ink, strokes, slopes)
    if lines is None:
        return None
    ink[lines] = 0.0
    return strokes & ~lines


def across(
    ink: np.ndarray, strokes: np.ndarray, slopes: tuple[float, float] | None = None
) -> np.ndarray | None:
    """The pixels of the rules to erase from an upload of a digit or a line of
    digits (its ink and stroke maps), crossings left out; None when there are none.
    ``slopes``: the page's, as ``turned`` finds them (found here if not given)."""
    height, width = strokes.shape
    if min(height, width) < MIN_SIDE:
        return None
    faint = ink_blobs.with_faint(ink, strokes)
    rise, lean = slopes if slopes is not None else turned(faint)
    wide, tall = round(RULE_SPAN * width), round(RULE_SPAN * height)
    flat, found = drifting(faint, wide, rise), None
    if flat.any():
        flat_lines = _Lines(flat, faint, 1, rise)
        if len(flat_lines.boxes) > MAX_LINES:
            return None  # noise, not paper
        # Upright lines as tall as RULE_SPAN of the image, and those from one flat line
        # to the next (the sides of a form's boxes in a row, a comb), however short.
        upright = drifting(faint.T, tall, lean).T
        gap = flat_lines.least_gap()
        if gap < tall:
            short = _Lines(drifting(faint.T, gap, lean).T & ~upright, faint, 0, lean)
            if len(short.boxes) <= MAX_LINES:
                upright |= short.where(flat_lines.joined_by(short))
        found = _erasable(strokes, flat_lines, _Lines(upright, faint, 0, lean))
    if found is None:  # none of those, or no rule among them: a box narrower than that?
        closed = _closed_box(strokes, faint, rise, lean)
        if closed is not None:
            found = _erasable(strokes, *closed)
    return found


def _erasable(strokes: np.ndarray, flat_lines: _Lines, upright_lines: _Lines) -> np.ndarray | None:
    """Of these lines, the rules to erase (see ``across``), or None."""
    height, width = strokes.shape
    if len(upright_lines.boxes) > MAX_LINES:
        return None
    flat, upright = flat_lines.labels > 0, upright_lines.labels > 0
    # The writing: the strokes off the lines and their next pixel across (where a
    # tilted line leaves its band of rows, as its ends may).
    rest = strokes & ~ink_blobs.dilated(flat, 1) & ~ink_blobs.dilated(upright, 1)
    askew = flat_lines.slope or upright_lines.slope
    cut = _Cut(rest) if askew else None  # a turned page's lines its corners cut short
    if cut is not None:
        rest = rest & ~cut.pieces
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
    found = flat | upright_lines.rules(box[:2], margins[1], thinnest)
    return found if cut is None else found | cut.thinner_than(thinnest)


def turned(faint: np.ndarray) -> tuple[float, float]:
    """How far a turned page's flat lines rise (rows a column) and its upright ones
    lean (columns a row), from the ink (``faint``); 0.0 each on a level page."""
    rise = tilt(faint)
    lean = 0.0 if rise is None else (tilt(faint.T) or 0.0)  # no flat piece: no rule
    return rise or 0.0, lean


def tilt(faint: np.ndarray) -> float | None:
    """How far the page's printed lines rise per column (a page turned by up to
    about 7 degrees): the slope of the thin straight pieces of ``faint`` across
    RULE_SPAN of the image, else of two or more across BOX_SPAN of it (a box's
    sides); 0.0 when that drifts by under a row across the image or there are no
    two such; None when there is no such piece at all. Found in STRIP-column
    strips: where every column of a strip has ink within a row of a row, a line
    passes; a piece is such places strip after strip, a row apart."""
    height, width = faint.shape
    full = np.packbits(_rows_either_way(faint), axis=1) == 255  # STRIP (8) columns a byte
    thin = full & ~_in_runs_over(full, PIECE_ROWS)  # a thick stroke is no printed line
    long, wide = max(BOX_SPAN * width, 3 * STRIP) - STRIP, RULE_SPAN * width - 2 * STRIP
    columns = np.flatnonzero(np.diff(thin.any(axis=0), prepend=False, append=False))
    if not columns.size or (columns[1::2] - columns[::2]).max() * STRIP < long:
        return None  # no piece could be that long: most uploads
    labels, _ = ndimage.label(thin, structure=ink_blobs.EIGHT_NEIGHBOURS)
    rises, across_it = [], []
    for number, box in enumerate(ndimage.find_objects(labels), start=1):
        if _length(box[1]) * STRIP < long:
            continue
        if len(rises) >= MAX_LINES:
            break  # noise
        piece = labels[box] == number
        # The piece's ink: in its rows of each strip and the next row either way.
        own = _rows_either_way(np.pad(piece, ((1, 1), (0, 0))))
        top, bottom = box[0].start - 1, box[0].stop + 1
        own = np.repeat(own[max(0, -top) : own.shape[0] - max(0, bottom - height)], STRIP, axis=1)
        left = box[1].start * STRIP
        ys, xs = np.nonzero(
            own & faint[max(0, top) : min(bottom, height), left : left + own.shape[1]]
        )
        xs = xs - xs.mean()
        rises.append(float(xs @ (ys - ys.mean()) / max(float(xs @ xs), 1.0)))
        across_it.append(_length(box[1]) * STRIP >= wide)
    if not rises:
        return None
    chosen = np.array(rises)[across_it] if any(across_it) else np.array(rises)
    if len(chosen) < 2 and not any(across_it):
        return 0.0  # one short piece: a stroke as likely as a box's side
    rise = float(np.median(chosen))
    return rise if abs(rise) * width >= 1.0 else 0.0


def _rows_either_way(mask: np.ndarray) -> np.ndarray:
    """``mask`` with the pixels a row above and below each of its pixels."""
    band = mask.copy()
    band[1:] |= mask[:-1]
    band[:-1] |= mask[1:]
    return band


def _in_runs_over(mask: np.ndarray, most: int) -> np.ndarray:
    """The pixels of ``mask`` in runs down its columns longer than ``most``."""
    height = mask.shape[0]
    if height <= most:
        return np.zeros_like(mask)
    starts = mask[: height - most].copy()  # where a run of most + 1 begins
    for step in range(1, most + 1):
        starts &= mask[step : height - most + step]
    inside = np.zeros_like(mask)
    for step in range(most + 1):
        inside[step : height - most + step] |= starts
    return inside


def _closed_box(
    strokes: np.ndarray, faint: np.ndarray, rise: float, lean: float
) -> tuple[_Lines, _Lines] | None:
    """A box shorter than RULE_SPAN of the image (a narrow digit's cell cropped with
    paper round it): flat and upright lines of ``strokes`` (a form's box is printed
    dark) across BOX_SPAN of it or more, each running from a line of the other
    orientation to another: the flat and the upright ones, or None."""
    height, width = strokes.shape
    flat_mask = drifting(strokes, round(BOX_SPAN * width), rise)
    if not flat_mask.any():
        return None  # most uploads: none of the cost below
    upright_mask = drifting(strokes.T, round(BOX_SPAN * height), lean).T
    if not upright_mask.any():
        return None
    flat = _Lines(flat_mask, faint, 1, rise)
    upright = _Lines(upright_mask, faint, 0, lean)
    if not (2 <= len(flat.boxes) <= MAX_LINES and 2 <= len(upright.boxes) <= MAX_LINES):
        return None
    ends = flat.where(upright.joined_by(flat, OVERRUN))
    sides = upright.where(flat.joined_by(upright, OVERRUN))
    if not (ends.any() and sides.any()):
        return None
    return _Lines(ends, faint, 1, rise), _Lines(sides, faint, 0, lean)


class _Cut:
    """Pieces of printed lines a turned page's corners cut short: on a level page a
    line runs across the image or not at all, but turned, a line near the top or
    bottom (or a side) leaves through the image's edge after part of its length. The
    components of ``rest`` within 2 px of the image's edge, at most CUT_THICKNESS
    thick (their area over their length); left in the writing, they would make it
    reach the edge and fail every line's margins. Erased when thinner than a rule."""

    def __init__(self, rest: np.ndarray):
        labels, count = ndimage.label(rest, structure=ink_blobs.EIGHT_NEIGHBOURS)
        edge = np.ones_like(rest)
        edge[3:-3, 3:-3] = False
        areas = np.bincount(labels.ravel(), minlength=count + 1)
        boxes = ndimage.find_objects(labels)
        self._labels, self._thickness = labels, np.full(count + 1, np.inf)
        touching = np.unique(labels[edge])
        for number in touching[touching > 0]:
            rows, columns = boxes[number - 1]
            thick = areas[number] / max(_length(rows), _length(columns))
            if thick <= CUT_THICKNESS:
                self._thickness[number] = thick
        self.pieces = np.isfinite(self._thickness)[labels]

    def thinner_than(self, thinnest: float) -> np.ndarray:
        return (self._thickness <= thinnest)[self._labels]


class _Lines:
    """Straight lines of one orientation, running along ``axis`` and sloping by
    ``slope`` (rows a column, or columns a row): each one's box, and how thick the
    ink (``faint``) is across it: the lower quartile along it (a stroke that crosses
    it or runs along it makes it thicker there)."""

    def __init__(self, lines: np.ndarray, faint: np.ndarray, axis: int, slope: float = 0.0):
        self.axis, self._faint, self.slope = axis, faint, abs(slope)
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
        their thickness left out (their drift too, when they slope: the gap is
        then the least between their boxes); a huge number when there are not two."""
        boxes = sorted(self.boxes, key=lambda box: box[0].start)
        gaps = [b[0].start - a[0].stop for a, b in itertools.pairwise(boxes)]
        if self.slope:  # sloping lines' boxes overlap, as do a line's pieces: not a gap
            gaps = [gap for gap in gaps if gap >= 3]
        return max(3, min(gaps)) if gaps else 1 << 30

    def joined_by(self, others: _Lines, overrun: float = 0.0):
        """The test whether a line of ``others`` (the other orientation; its box) runs
        from one of these lines to another: each of its ends within 2 px of one (or past it by
        ``overrun`` of its length: a form's lines may cross at a box's corners), which
        reaches it (a sloping line's box is wider than the line by its drift)."""

        def joined(other: tuple[slice, slice]) -> bool:
            along, position = other[1 - self.axis], other[self.axis]
            slack = 2 + round(others.slope * _length(along))
            past = round(overrun * _length(along))
            ends = [False, False]
            for box in self.boxes:
                lies, runs = box[1 - self.axis], box[self.axis]
                if runs.start - slack <= position.start and position.stop <= runs.stop + slack:
                    ends[0] |= lies.start - 2 - past <= along.start <= lies.stop + 2
                    ends[1] |= lies.start - 2 <= along.stop - 1 <= lies.stop + 2 + past
            return all(ends)

        return joined

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


def _length(span: slice) -> int:
    return span.stop - span.start


def _run_lengths(mask: np.ndarray, axis: int) -> np.ndarray:
    """Each pixel's run of ``mask`` along ``axis`` (0 off the mask)."""
    runs = np.moveaxis(mask, axis, 0)
    size = runs.shape[0]
    index = np.arange(size).reshape(-1, *([1] * (runs.ndim - 1)))
    last_off = np.maximum.accumulate(np.where(runs, -1, index), axis=0)
    next_off = np.minimum.accumulate(np.where(runs, size, index)[::-1], axis=0)[::-1]
    return np.moveaxis(np.where(runs, next_off - last_off - 1, 0), 0, axis)
