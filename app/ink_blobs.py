"""Which of an image's ink is the digit's (step 5 of ``app.preprocessing``).

``digit_ink`` erases printed lines (``app.rules``), then keeps the digit's blobs:
strokes joined through their faint pixels (hysteresis, as edge detectors do),
specks and grain dropped, marks cut by the image's edge dropped when a digit lies
inside the frame (but the digit's own pieces the edge cuts); every pixel farther
than the strokes' anti-aliased edge (``halo``) goes to 0. It looks within the
strokes' box, grown by a margin, and at the whole image only when a joined blob
runs out of that box: the same answer, in a fraction of the time on a photo
whose digit fills part of the frame.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
from scipy import ndimage

from app import rules

if TYPE_CHECKING:
    from app.preprocessing import InkStrength

FAINT_INK = 0.1  # of full ink: fainter pixels join no strokes (broken strokes' bridges)
SPECK_FRACTION = 0.05  # ink blobs lighter than this share of the largest are noise
LONG_FRACTION = 0.2  # ... unless this long against it (a hairline's piece)
INSIDE_DOMINANCE = 0.1  # blobs inside the frame win when this heavy against the largest
PART_REACH = 2.0  # ... with the pieces cut by the frame that meet them, no larger than this
# A neighbour's strokes cut by a tight crop's side weigh at most NEIGHBOUR_MASS against the
# digit, are at least NEIGHBOUR_HEIGHT as tall (the tip of the next digit's bulge is a
# third of the height; a broken-off end of the digit's own stroke, less), and overlap its
# columns by at most NEIGHBOUR_OVERLAP of its width; a digit under NEIGHBOUR_MIN_HEIGHT px
# (a 16×16 scan) has its own pieces a pixel or two apart, and is left as it is.
NEIGHBOUR_MASS = 0.8
NEIGHBOUR_HEIGHT = 0.3
NEIGHBOUR_OVERLAP = 0.15
NEIGHBOUR_MIN_HEIGHT = 24
EIGHT_NEIGHBOURS = np.ones((3, 3), dtype=bool)
# Images stacked on a first axis: eight neighbours in an image, none across images.
STACKED_EIGHT_NEIGHBOURS = np.pad(EIGHT_NEIGHBOURS[np.newaxis], ((1, 1), (0, 0), (0, 0)))
WINDOW_MARGIN = 4  # halos around the strokes' box where a joined blob's faint edge may run
WINDOW_SHARE = 0.5  # a window over this share of the image: the whole image instead
WINDOW_MIN_PIXELS = 128 * 128  # smaller images (MNIST's, the fast path's) are looked at whole
# Masks up to this size and this many runs are first counted by their runs
# (``blob_count``): most digits' strokes are one blob, and then ``ndimage.label`` is
# not needed. MNIST's strokes make 25 runs (median; at most 42 of 2,000 training
# digits); a noise mask's hundreds would cost ms in Python, against label's 30 µs.
COUNT_MAX_PIXELS = 64 * 64
COUNT_MAX_RUNS = 96

Box = tuple[int, int, int, int]  # top, bottom, left, right (exclusive)


def digit_ink(strength: InkStrength, one_blob: bool = False) -> np.ndarray:
    """The ink of the digit's blobs (specks and marks cut by the edge at 0), in place.
    ``one_blob``: the strokes are known to make one blob (``digit_inks`` labelled them
    with other images'), and are not labelled again unless printed lines come off them."""
    ink, strokes = strength.ink, strength.strokes
    without_lines = rules.erase(ink, strokes)  # printed lines the digit is written on
    if without_lines is not None:
        strokes, one_blob = without_lines, False
    margin = halo(ink.shape)
    whole = (0, ink.shape[0], 0, ink.shape[1])
    if one_blob:
        box, found = whole, (strokes, 1)
    else:
        box = _window(strokes, WINDOW_MARGIN * margin) if ink.size >= WINDOW_MIN_PIXELS else None
        found = None if box is None else _digit_strokes(ink, strokes, box, whole)
        if found is None:  # no window worth it, or a blob ran out of it
            box, found = whole, _digit_strokes(ink, strokes, whole, whole)
    kept, count = found
    if count != 1 or strength.noisy or without_lines is not None:  # clear away from strokes
        if box == whole:
            ink[~dilated(kept, margin)] = 0.0
        else:
            _clear_around(ink, kept, box, margin)
    return ink


def digit_inks(strengths: list[InkStrength]) -> list[np.ndarray]:
    """``digit_ink`` of each, the strokes of the images of one shape labelled in one
    call (a micro-batch's 28×28 PNGs: one call's overhead, not one each): each
    image's ``digit_ink`` is told whether its strokes make one blob."""
    shapes: dict[tuple[int, ...], list[int]] = {}
    for index, strength in enumerate(strengths):
        shapes.setdefault(strength.ink.shape, []).append(index)
    lone = [False] * len(strengths)
    for indices in shapes.values():
        if len(indices) > 1:
            blobs = _lone_blobs([strengths[index].strokes for index in indices])
            for index, alone in zip(indices, blobs, strict=True):
                lone[index] = alone
    return [digit_ink(strength, alone) for strength, alone in zip(strengths, lone, strict=True)]


def _lone_blobs(strokes: list[np.ndarray]) -> list[bool]:
    """Whether each stroke mask (all of one shape) is one blob, as ``_digit_strokes``
    labels them: the masks stacked and labelled at once, no blob joining two."""
    labels, _ = ndimage.label(np.array(strokes), structure=STACKED_EIGHT_NEIGHBOURS)
    each = labels.reshape(len(strokes), -1)
    highest = each.max(axis=1)
    lowest = np.where(each > 0, each, highest.max() + 1).min(axis=1)
    return ((highest > 0) & (highest == lowest)).tolist()


def blob_count(mask: np.ndarray, most_runs: int) -> int | None:
    """How many blobs ``ndimage.label(mask, structure=EIGHT_NEIGHBOURS)`` finds, by
    joining the mask's runs to those they touch in the row above (union-find); None
    when it has over ``most_runs`` runs. For small masks, where label's fixed cost is
    the most of its 12 µs a call, and it slows the fast path's other steps by twice
    that (docs/performance.md); this takes 10 µs on a 28×28 digit."""
    height, width = mask.shape
    stride = width + 1  # each row and a column of background, in one line
    flat = np.zeros(height * stride + 1, dtype=bool)
    flat[1:].reshape(height, stride)[:, :width] = mask
    edges = (flat[1:] != flat[:-1]).nonzero()[0]  # each run's start and end
    if edges.size > 2 * most_runs:
        return None
    edges = edges.tolist()
    parent = list(range(len(edges) // 2))  # runs joined to a run above them
    blobs = len(parent)
    # The row above's runs (index, start, end), their columns moved down to this row's.
    above: list[tuple[int, int, int]] = []
    here: list[tuple[int, int, int]] = []
    row = -2
    for run, (start, end) in enumerate(zip(edges[::2], edges[1::2], strict=True)):
        at = start // stride
        if at != row:
            above = here if at == row + 1 else []
            here, row = [], at
        here.append((run, start + stride, end + stride))
        for other, other_start, other_end in above:  # in order of their starts
            if other_start > end:
                break  # neither it nor any after it touches this run
            if other_end >= start:  # touching, diagonals included (ends are exclusive)
                mine, theirs = run, other
                while parent[mine] != mine:
                    mine = parent[mine]
                while parent[theirs] != theirs:
                    theirs = parent[theirs]
                if mine != theirs:
                    parent[mine] = theirs
                    blobs -= 1
    return blobs


def bounds(mask: np.ndarray) -> Box | None:
    """The box holding every non-zero pixel of ``mask``, or None when it has none."""
    rows = mask.any(axis=1).nonzero()[0]  # as np.flatnonzero, without its ravel
    if rows.size == 0:
        return None
    columns = mask[rows[0] : rows[-1] + 1].any(axis=0).nonzero()[0]
    return int(rows[0]), int(rows[-1]) + 1, int(columns[0]), int(columns[-1]) + 1


def _window(strokes: np.ndarray, margin: int) -> Box | None:
    """The strokes' bounding box grown by ``margin`` (within the image), or None
    when there are no strokes or the box is most of the image."""
    tight = bounds(strokes)
    if tight is None:
        return None
    box = _grown(tight, margin, strokes.shape)
    return box if _area(box) <= WINDOW_SHARE * strokes.size else None


def _grown(box: Box, margin: int, shape: tuple[int, ...]) -> Box:
    """``box`` grown by ``margin`` on every side, within an image of ``shape``."""
    top, bottom, left, right = box
    return (
        max(0, top - margin),
        min(shape[0], bottom + margin),
        max(0, left - margin),
        min(shape[1], right + margin),
    )


def _clear_around(ink: np.ndarray, kept: np.ndarray, box: Box, margin: int) -> None:
    """``ink[~dilated(strokes, margin)] = 0`` for strokes ``kept`` within ``box``:
    outside the box grown by the margin at once, within it pixel by pixel."""
    top, bottom, left, right = box
    near = _grown(box, margin, ink.shape)
    mask = np.zeros((near[1] - near[0], near[3] - near[2]), dtype=bool)
    mask[top - near[0] : bottom - near[0], left - near[2] : right - near[2]] = kept
    ink[near[0] : near[1], near[2] : near[3]][~dilated(mask, margin)] = 0.0
    ink[: near[0]] = ink[near[1] :] = 0.0
    ink[:, : near[2]] = ink[:, near[3] :] = 0.0


def _area(box: Box) -> int:
    return (box[1] - box[0]) * (box[3] - box[2])


def _digit_strokes(
    ink: np.ndarray, strokes: np.ndarray, box: Box, whole: Box
) -> tuple[np.ndarray, int] | None:
    """The digit's strokes within ``box`` (holding every stroke) and how many blobs
    they make (0 when some were dropped), as over the whole image; None when a blob
    joined through faint pixels reaches a side of the box inside the image."""
    top, bottom, left, right = box
    ink, strokes = ink[top:bottom, left:right], strokes[top:bottom, left:right]
    if strokes.size <= COUNT_MAX_PIXELS and blob_count(strokes, COUNT_MAX_RUNS) == 1:
        return strokes, 1
    labels, count = ndimage.label(strokes, structure=EIGHT_NEIGHBOURS)
    if count > 1:
        # Strokes broken where the pen was faint (a hairline beside a heavy blot)
        # are one blob through their faint pixels.
        faint, faint_count = ndimage.label(with_faint(ink, strokes), structure=EIGHT_NEIGHBOURS)
        held = np.zeros(faint_count + 1, dtype=bool)
        held[faint[strokes]] = True
        # The joined blobs are the faint blobs holding strokes, numbered in order
        # (the order of their first pixels, which a box does not change).
        labels = (np.cumsum(held) * held)[faint]
        count = int(np.count_nonzero(held))
        strokes = labels > 0
        sides = (labels[0], labels[-1], labels[:, 0], labels[:, -1])
        inside = [side for side, a, b in zip(sides, box, whole, strict=True) if a != b]
        if any(side.any() for side in inside):
            return None  # a joined blob runs on past the box
    if count > 1:
        masses = label_masses(ink, labels, count)
        # The blobs on the box's sides touch the image's edge: none reaches a side inside.
        edge = np.concatenate(sides)
        touching = np.zeros(count + 1, dtype=bool)
        touching[edge] = True
        touching = touching[1:]
        # Prefer the blobs that lie inside the frame when they hold a digit's worth
        # of ink: a mark cut by the edge (the paper's border, a shadow, a
        # neighbour's stroke) is then dropped. When what lies inside is only
        # specks, the image is a tight crop and the digit is what touches the edge.
        inside_mass = np.where(touching, 0.0, masses)
        prefer_inside = inside_mass.max() >= INSIDE_DOMINANCE * masses.max()
        candidates = inside_mass if prefer_inside else masses
        keep = candidates >= SPECK_FRACTION * candidates.max()
        boxes = ndimage.find_objects(labels, count)
        if not keep.all():
            # A hairline broken where the pen skipped: its pieces are light but long
            # (against the heaviest blob's longer side), where specks and grain are
            # small every way.
            extents = np.array([max(s.stop - s.start for s in blob) for blob in boxes])
            reach = extents[int(np.argmax(candidates))]
            keep |= (candidates > 0) & (extents >= LONG_FRACTION * reach)
            if prefer_inside:  # the digit's own pieces cut by the frame stay with it
                keep |= touching & _meeting(boxes, keep)
        if keep.sum() > 1:  # but not a neighbour's, cut by the crop
            keep &= ~_cut_neighbours(boxes, masses, left, (whole[1], whole[3]))
        if not keep.all():
            strokes = np.isin(labels, np.flatnonzero(keep) + 1)
            count = 0  # something was dropped: clear what lies away from the strokes
    return strokes, count


def _cut_neighbours(
    boxes: list[tuple[slice, slice]], masses: np.ndarray, left: int, shape: tuple[int, int]
) -> np.ndarray:
    """Which blobs are a neighbour's strokes cut by the left or right edge of a tight
    crop (a digit cut from a line of writing): on a side the heaviest blob leaves
    clear, the blobs wholly beside it, one of them running into the edge, together
    lighter than it and a digit's height against it (a digit's own pieces overlap
    its columns: a 5's bar, a 4's stem). ``boxes`` lie in a window ``left`` columns
    into an image of ``shape``."""
    main = int(np.argmax(masses))
    rows = boxes[main][0]
    height = rows.stop - rows.start
    cut = np.zeros(len(boxes), dtype=bool)
    if height < NEIGHBOUR_MIN_HEIGHT:
        return cut  # see NEIGHBOUR_MIN_HEIGHT
    near = halo(shape)  # an edge reached but for its anti-aliased rim
    tops = np.array([box[0].start for box in boxes])
    bottoms = np.array([box[0].stop for box in boxes])
    starts = np.array([box[1].start for box in boxes]) + left  # in the image's columns
    stops = np.array([box[1].stop for box in boxes]) + left
    first, end, width = starts[main], stops[main], shape[1]
    overlap = NEIGHBOUR_OVERLAP * (end - first)
    for beside, at_edge, clear in (
        (stops <= first + overlap, starts <= near, first > near),
        (starts >= end - overlap, stops >= width - near, end < width - near),
    ):
        beside[main] = False
        if not (clear and (beside & at_edge).any()):
            continue
        tall = bottoms[beside].max() - tops[beside].min() >= NEIGHBOUR_HEIGHT * height
        if tall and masses[beside].sum() <= NEIGHBOUR_MASS * masses[main]:
            cut |= beside
    return cut


def _meeting(boxes: list[tuple[slice, slice]], kept: np.ndarray) -> np.ndarray:
    """Which blobs' boxes meet the box of the ``kept`` ones and are at most PART_REACH
    times its longer side: pieces of the same digit (a 5's body cut by the frame, its
    bar inside), where a neighbour's stroke, the paper's border or a shadow lies apart
    from the digit or runs far beyond it."""
    chosen = [box for box, keep in zip(boxes, kept, strict=True) if keep]
    top, bottom = min(b[0].start for b in chosen), max(b[0].stop for b in chosen)
    left, right = min(b[1].start for b in chosen), max(b[1].stop for b in chosen)
    reach = PART_REACH * max(bottom - top, right - left)
    return np.array(
        [
            rows.start < bottom
            and top < rows.stop
            and columns.start < right
            and left < columns.stop
            and max(rows.stop - rows.start, columns.stop - columns.start) <= reach
            for rows, columns in boxes
        ]
    )


def label_masses(ink: np.ndarray, labels: np.ndarray, count: int) -> np.ndarray:
    """The ink of each of the labels 1..count (float64), as ``ndimage.sum_labels``
    gives it, in half its time."""
    return np.bincount(labels.ravel(), weights=ink.ravel(), minlength=count + 1)[1:]


def with_faint(ink: np.ndarray, strokes: np.ndarray) -> np.ndarray:
    """The strokes and the fainter ink that bridges them (over FAINT_INK)."""
    return strokes | (ink > FAINT_INK)


def pen_width(strokes: np.ndarray) -> float:
    """The strokes' typical width: twice their area over their outline's length."""
    inner = ~dilated(~strokes, 1)
    outline = int(np.count_nonzero(strokes)) - int(np.count_nonzero(inner & strokes))
    return 2.0 * np.count_nonzero(strokes) / max(outline, 1)


def halo(shape: tuple[int, ...]) -> int:
    """How far from the strokes their anti-aliased edge reaches, in pixels: kept
    around them, nothing further away (not the faint unevenness flattening the
    paper leaves everywhere either)."""
    return max(2, round(max(shape) / 100))


def dilated(mask: np.ndarray, steps: int) -> np.ndarray:
    """``mask`` grown by ``steps`` pixels up, down, left and right (a diamond), as
    ``ndimage.binary_dilation(mask, iterations=steps)``, in a fraction of its time."""
    for _ in range(steps):
        grown = mask.copy()
        grown[1:] |= mask[:-1]
        grown[:-1] |= mask[1:]
        grown[:, 1:] |= mask[:, :-1]
        grown[:, :-1] |= mask[:, 1:]
        mask = grown
    return mask
