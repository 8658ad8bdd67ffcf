"""Writing habits MNIST rarely shows, drawn onto its digits and pendigits' strokes.

A 7 crossed at mid-height, as much of continental Europe writes it. ``model.world``
measures held-out MNIST 7s crossed ("crossed 7"); ``python -m model.train
--crossed-sevens SHARE`` crosses that share of the training 7s (MNIST's world
variants, pendigits' training writers) and of the validation 7s. The shipped recipe
crosses none: see docs/training-tried.md.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable

import numpy as np
from PIL import Image, ImageDraw
from scipy import ndimage

from model import data
from model import distort as d
from model.realdigits import PenDigit

SEVEN = 7
BAR_AT = (0.42, 0.6)  # the bar's height, a share of the 7's from its top
BAR_HALF = (0.2, 0.33)  # its half length, a share of the 7's width
BAR_RISE = 0.12  # at most this much of its half length higher at one end


def _height(rng: np.random.Generator, top: float, bottom: float) -> float:
    return top + rng.uniform(*BAR_AT) * (bottom - top)


def _span(rng: np.random.Generator, width: float) -> tuple[float, float]:
    """The bar's half length and its rise across it, for a 7 ``width`` wide."""
    half = width * rng.uniform(*BAR_HALF)
    return float(half), float(rng.uniform(-BAR_RISE, BAR_RISE) * half)


def _bar(ink: np.ndarray, rng: np.random.Generator) -> tuple[float, float, float, float] | None:
    """Where a 7's bar goes, in the ink's pixels: the stem's centre (x, y) at 42–60 %
    of the ink's height, the bar's half length (a fifth to a third of the ink's width)
    and its rise across that length; None where no stem crosses that row."""
    mask = ink > 0.3
    rows, columns = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    if len(rows) < 4:
        return None
    y = int(_height(rng, rows[0], rows[-1]))
    inked = np.flatnonzero(mask[y])
    if not len(inked):
        return None
    below = np.flatnonzero(mask[y:].any(axis=0))
    runs = np.split(inked, np.flatnonzero(np.diff(inked) > 1) + 1)
    x = min((run.mean() for run in runs), key=lambda centre: abs(centre - below.mean()))
    return (float(x), float(y), *_span(rng, columns[-1] - columns[0] + 1))


def crossed_seven(ink: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A 7's ink (float, 1 = ink, any size) with a bar across its stem, as wide and
    as dark as its strokes."""
    where = _bar(ink, rng)
    if where is None:
        return ink
    x, y, half, rise = where
    mask = ink > 0.3
    width = max(1.0, 2 * float(np.percentile(ndimage.distance_transform_edt(mask)[mask], 95)))
    scale = 4  # drawn supersampled, then reduced: anti-aliased as the strokes are
    bar = Image.new("L", (ink.shape[1] * scale, ink.shape[0] * scale), 0)
    ends = [((x - half) * scale, (y + rise) * scale), ((x + half) * scale, (y - rise) * scale)]
    ImageDraw.Draw(bar).line(ends, fill=255, width=max(1, round(width * scale)))
    coverage = np.asarray(bar.resize(ink.shape[::-1], Image.Resampling.BOX), np.float32) / 255
    darkness = float(np.percentile(ink[mask], 75))
    return np.maximum(ink, coverage * darkness)


def crossed_pen_seven(digit: PenDigit, rng: np.random.Generator) -> PenDigit:
    """A pendigits 7 with one more stroke: a bar across its stem at 42–60 % of its
    height, from a fifth to a third of its width each side."""
    points = np.concatenate(digit.strokes)
    low, high = points.min(axis=0), points.max(axis=0)
    y = _height(rng, low[1], high[1])
    crossings = [
        a[0] + (y - a[1]) * (b[0] - a[0]) / (b[1] - a[1])
        for stroke in digit.strokes
        for a, b in itertools.pairwise(stroke)
        if min(a[1], b[1]) <= y < max(a[1], b[1])
    ]
    if not crossings:
        return digit
    x = float(np.median(crossings))
    half, rise = _span(rng, high[0] - low[0])
    bar = np.array([[x - half, y + rise], [x + half, y - rise]], dtype=np.float32)
    return PenDigit(digit.label, (*digit.strokes, bar), digit.writer)


def sevens(digits: data.Split) -> data.Split:
    """The split's 7s."""
    seven = digits.labels == SEVEN
    return data.Split(digits.images[seven], digits.labels[seven])


def crossed_upload(digit: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """An MNIST 7 (uint8, ink bright) drawn in a 56–112 px square and crossed, cropped
    to a margin of 4–19 px, dark ink on white: grey uint8 for ``model.world``."""
    ink = crossed_seven(d.mnist_ink(digit, int(rng.integers(56, 113))), rng)
    pad = int(rng.integers(4, 20))
    return d.on_paper(d.padded(d.cropped(ink), pad, pad, pad, pad))


RENDERED: dict[str, Callable[[np.ndarray, np.random.Generator], np.ndarray]] = {
    "crossed 7": crossed_upload,
}
