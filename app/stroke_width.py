"""Stroke width: how wide a digit's strokes are, and hairlines grown to MNIST's.

MNIST's strokes are about MNIST_PEN px wide once a digit is fitted to 20 px. A
digit written with a hairline pen or a fine nib, fitted the same way, fades to
a faint thread the network never saw (88 % read before this, 98 % after, on the
project's hairline kind): ``thickened`` grows such strokes to MNIST's width first.
No web framework in here.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

MNIST_PEN = 2.4  # px at 28×28: the median upload's strokes
THIN_PEN = 1.2  # strokes thinner than this at 28×28 are grown to MNIST_PEN ...
LONGEST_STROKES = 100  # ... when they are at most this long at 28×28 (a digit's; an 8 ~60)


def measure(strokes: np.ndarray) -> float:
    """The strokes' typical width in pixels: twice their area over their outline's
    length (the stroke pixels with a 4-neighbour off the stroke)."""
    inner = strokes.copy()
    inner[1:] &= strokes[:-1]
    inner[:-1] &= strokes[1:]
    inner[:, 1:] &= strokes[:, :-1]
    inner[:, :-1] &= strokes[:, 1:]
    outline = int(np.count_nonzero(strokes)) - int(np.count_nonzero(inner))
    return 2.0 * np.count_nonzero(strokes) / max(outline, 1)


def thickened(crop: np.ndarray, scale: float) -> np.ndarray:
    """Ink cropped to a digit, to be scaled by ``scale``: as it is, or with its strokes
    grown to MNIST_PEN (and its ink to full strength) when they would be thinner
    than THIN_PEN. Thin lines longer than a digit's (a page of text, a texture, a
    scribble) are left as they are, for the network to refuse."""
    strokes = crop > 0.5 * float(crop.max())
    # Twice the area over the boundary's edges: never above ``measure``, and cheap.
    edges = np.count_nonzero(strokes[1:] != strokes[:-1])
    edges += np.count_nonzero(strokes[:, 1:] != strokes[:, :-1])
    if 2.0 * np.count_nonzero(strokes) / max(edges, 1) * scale >= THIN_PEN:
        return crop
    pen = measure(strokes)
    if pen * scale >= THIN_PEN:
        return crop
    # The strokes' length at 28×28: half their outline (area over width).
    if np.count_nonzero(strokes) / pen * scale > LONGEST_STROKES:
        return crop
    steps = max(1, round((MNIST_PEN / scale - pen) / 2))
    diamond = np.add.outer(*(np.abs(np.arange(-steps, steps + 1)),) * 2) <= steps
    grown = np.pad(crop / float(crop.max()), steps)
    return ndimage.grey_dilation(grown, footprint=diamond)
