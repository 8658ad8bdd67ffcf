"""Digits as old registers hold them: a parish or account book, scanned.

Paper yellowed and mottled, foxed with brown spots; ink faded, its strength varying
along the strokes (a dip pen running dry); the writing on the other side of the
leaf showing through, faint and mirrored; the digit cropped close, as a register's
column cuts it. Each renderer takes an MNIST digit (uint8, ink bright); grey uint8
for ``model.world``.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from PIL import Image

from model import distort as d


def _smooth(
    shape: tuple[int, int], rng: np.random.Generator, low: float, high: float
) -> np.ndarray:
    """A field varying gently between ``low`` and ``high`` over ``shape``."""
    cells = rng.random((5, 5)).astype(np.float32)
    field = np.asarray(
        Image.fromarray(cells).resize((shape[1], shape[0]), Image.Resampling.BICUBIC), np.float32
    )
    field = (field - field.min()) / max(float(np.ptp(field)), 1e-6)
    return low + (high - low) * field


def old_register(digit: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """The digit drawn in a 32–128 px square, cropped to its ink with 4–15 px of paper
    round it, as a scan of an old book shows it."""
    side = int(rng.integers(32, 129))
    ink = d.cropped(d.mnist_ink(digit, side), margin=int(rng.integers(4, 16)), level=0.05)
    height, width = ink.shape
    ink = ink * _smooth(ink.shape, rng, rng.uniform(0.3, 0.8), 1.0)  # the pen running dry
    # The other side's writing, mirrored and elsewhere on the leaf.
    through = np.roll(ink[:, ::-1], (int(rng.integers(height)), int(rng.integers(width))), (0, 1))
    through = through * rng.uniform(0.0, 0.35)
    paper = rng.uniform(175, 225) + _smooth(ink.shape, rng, -12, 12)
    rows, columns = np.ogrid[:height, :width]
    for _ in range(int(rng.integers(0, 9))):  # foxing
        row, column = rng.integers(height), rng.integers(width)
        radius = rng.uniform(1, 6) * side / 80
        spot = ((rows - row) ** 2 + (columns - column) ** 2) / (2 * radius * radius)
        paper = paper - rng.uniform(10, 50) * np.exp(-spot)
    ink_level = rng.uniform(40, 100)
    paper = paper * (1 - 0.5 * through) + ink_level * 0.5 * through
    pixels = paper * (1 - ink) + ink_level * ink + rng.normal(0, rng.uniform(2, 6), ink.shape)
    return np.clip(np.rint(pixels), 0, 255).astype(np.uint8)


RENDERED: dict[str, Callable[[np.ndarray, np.random.Generator], np.ndarray]] = {
    "old register": old_register,
}
