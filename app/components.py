"""The stroke components of a line of writing: specks dropped, rules removed.

``find`` labels the 8-connected stroke blobs of an ink map, drops specks smaller
than the pen and keeps at most MAX_COMPONENTS (the heaviest), so a page of noise
costs a bounded amount; ``line_height`` is the height of the line's digits; and
``without_rules`` erases long horizontal runs (ruled paper, an underline, a form's
box) except where a stroke crosses them. No web framework in here.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from app import ink_blobs, preprocessing, rules

MAX_COMPONENTS = 512  # blobs considered after specks are dropped (the heaviest)
HEAVY = 0.1  # the pen is measured on blobs of at least this share of the heaviest's mass
RULE_LENGTH = 1.5  # a horizontal run this many line heights long is a rule, not a stroke
FEW_BLOBS = 48  # up to this many, each blob is measured within its box, not over the image


@dataclass
class Blobs:
    labels: np.ndarray  # int32 label image, 0 = none
    ids: np.ndarray  # (n,) the labels kept
    top: np.ndarray
    left: np.ndarray
    bottom: np.ndarray  # exclusive
    right: np.ndarray  # exclusive
    mass: np.ndarray

    @property
    def height(self) -> np.ndarray:
        return self.bottom - self.top

    @property
    def width(self) -> np.ndarray:
        return self.right - self.left


def find(ink: np.ndarray, strokes: np.ndarray, pen: float | None = None) -> tuple[Blobs, float]:
    """The stroke components bigger than a speck, at most MAX_COMPONENTS (the
    heaviest), and the pen's width (measured on the heavy components, unless given)."""
    labels, count = ndimage.label(strokes, structure=ink_blobs.EIGHT_NEIGHBOURS)
    slices = ndimage.find_objects(labels)
    extents = np.array(
        [(s[0].start, s[1].start, s[0].stop, s[1].stop) for s in slices], dtype=np.int64
    ).reshape(-1, 4)
    ids = np.arange(1, count + 1)
    few = count <= FEW_BLOBS
    mass = _masses(ink, labels, slices) if few else ink_blobs.label_masses(ink, labels, count)
    if pen is None:
        heavy = ids[mass >= HEAVY * mass.max()] if count else ids
        pen = ink_blobs.pen_width(
            _blobs_mask(labels, slices, heavy) if few else np.isin(labels, heavy)
        )
    size = np.maximum(extents[:, 2] - extents[:, 0], extents[:, 3] - extents[:, 1])
    keep = np.flatnonzero(size >= 0.7 * pen)
    if keep.size == 0:
        raise preprocessing.NoDigitError("No digit found: only specks, no strokes.")
    if keep.size > MAX_COMPONENTS:
        keep = keep[np.argsort(-mass[keep], kind="stable")[:MAX_COMPONENTS]]
        keep.sort()
    top, left, bottom, right = extents[keep].T
    return Blobs(labels, ids[keep], top, left, bottom, right, mass[keep]), pen


def _masses(ink: np.ndarray, labels: np.ndarray, slices: list) -> np.ndarray:
    """``ink_blobs.label_masses``, each blob summed within its box: for a few
    blobs on a line (a number, a 600×150 image) a seventh of its time."""
    masses = [
        ink[box][labels[box] == number].sum(dtype=np.float64)
        for number, box in enumerate(slices, start=1)
    ]
    return np.array(masses, dtype=np.float64)


def _blobs_mask(labels: np.ndarray, slices: list, numbers: np.ndarray) -> np.ndarray:
    """``np.isin(labels, numbers)``, each blob set within its box."""
    mask = np.zeros(labels.shape, dtype=bool)
    for number in numbers:
        box = slices[number - 1]
        mask[box] |= labels[box] == number
    return mask


def line_height(blobs: Blobs, pen: float) -> float:
    """The height of the line's digits: the median of the tall components' heights,
    leaving out long flat ones (rules) and specks under two pen widths high when
    there is anything else. Digits that all sit on a rule make one long flat blob
    with it: then a speck beside them is not the line."""
    height, width = blobs.height, blobs.width
    digits = (width < 4 * height) & (height >= 2 * pen)
    heights = height[digits] if digits.any() else height
    return float(np.median(heights[heights >= 0.5 * heights.max()]))


def without_rules(
    strokes: np.ndarray, blobs: Blobs, height: float, rise: float = 0.0
) -> np.ndarray | None:
    """The strokes with rules (ruled paper, underlines, boxes) erased, or None if
    there are none; on a page turned so that they rise ``rise`` rows a column
    (``rules.tilt``). Where a stroke crosses a rule, the crossing is kept."""
    length = max(3, round(RULE_LENGTH * height))
    if not (blobs.width >= length).any():
        return None
    # Let a rule drift a row or two (and follow a turned page's slope) and still be one run.
    lines = rules.drifting(strokes, length, rise)
    if not lines.any():
        return None
    kept = strokes & ~lines
    reach = max(3, round(0.2 * height))
    crossing = ndimage.binary_closing(kept, structure=np.ones((reach, 1), dtype=bool))
    return kept | (lines & crossing)
