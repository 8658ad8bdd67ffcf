"""Hairline strokes grown to MNIST's stroke width before the 20 px fit.

A digit written with a fine nib, photographed large or drawn with a one-pixel
brush becomes, once scaled to 20 px, a faint line a fraction of a pixel wide:
nothing MNIST ever showed the network (the hairline kind read 88 % without
this). MNIST's strokes are about 2–3 px wide at 28×28; this grows a crop's
strokes to that width when they are much thinner, at the crop's own resolution
so the fit still anti-aliases them. Everything else passes unchanged (no MNIST
training digit is thin enough to be grown). On a clean image, a hairline digit with a
blot (ink pooled where the pen paused, a loop filled in) is grown too: its width is
also measured along its strokes' ridge, where a blot is short.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

CORE = 0.5  # ink above this is stroke core
HAIRLINE = 0.7  # strokes measured thinner than this at the fit's scale (px) are grown ...
TARGET = 3.4  # ... to this width, so that once fitted they measure MNIST's median, 2.0
# ... when all of them laid end to end are at most this long at the fit's scale (px).
# A digit's are 20-60 px (an 8's two loops are the longest); fine stripes, grain and
# the shading of a photo run to hundreds, and growing those draws strokes where there
# are none (a first retraining without this limit, and with fewer non-digits, answered
# 19 % of textures; the shipped network, trained with it, 5 %).
MAX_LENGTH = 80
# A clean image's strokes are a blotted hairline when at least this share of their ridge
# is thinner than HAIRLINE, and their mean width at most BLOTTED_WIDTH: 1,000 hairline
# digits (``model.world``) read 97.8 -> 98.3 %, refused 1.0 -> 0.5 %; 2 more of the
# 4,000 scribbles and textures of seeds 0 and 1 answered; every other kind the same.
# Photos and noisy images are not grown so: their grain passes for hairlines (scenes
# answered 2.0 -> 8.0 %).
BLOTTED_SHARE = 0.7
BLOTTED_WIDTH = 1.4


def measured_width(crop: np.ndarray) -> float:
    """Stroke width in the crop's pixels: twice the ink over the cores' outline.

    A stroke of width w and length L holds w·L of ink and has an outline of about
    2·L, so 2·ink/outline ≈ w. The outline is counted along rows and columns, which
    overcounts slanted edges, so the figure runs low (MNIST's median is 2.0 at the
    fit's scale, its thinnest digits 0.9); HAIRLINE and TARGET are in the same units.
    """
    core = crop > CORE
    # The cores' sides that face no core (the frame counted as none, as if padded):
    # four a pixel, less two for each pair of neighbours along a column or a row.
    outline = 4 * np.count_nonzero(core) - 2 * (
        np.count_nonzero(core[1:] & core[:-1]) + np.count_nonzero(core[:, 1:] & core[:, :-1])
    )
    return 2.0 * float(crop.sum()) / max(outline, 1)


def ridge_widths(core: np.ndarray) -> np.ndarray:
    """The stroke width at each pixel of the cores' ridge (the local maxima of their
    distance to the paper), in the crop's pixels: a line 1 px wide measures 1."""
    distance = ndimage.distance_transform_edt(np.pad(core, 1))[1:-1, 1:-1]
    ridge = core & (distance >= ndimage.maximum_filter(distance, size=3))
    return 2.0 * distance[ridge] - 1.0


def grown(crop: np.ndarray, box: int, clean: bool = False) -> np.ndarray:
    """``crop`` (ink in [0, 1], cropped to its ink) with hairline strokes thickened so
    that, fitted to ``box`` px, they measure TARGET; any other crop as it was (the
    same object). ``clean``: the image's paper is clean (no photo's grain), so that a
    blotted hairline is grown too."""
    scale = box / max(crop.shape)
    width = measured_width(crop) * scale
    length = float(crop.sum()) * scale * scale / width
    if (width >= HAIRLINE or length > MAX_LENGTH) and clean and width <= BLOTTED_WIDTH:
        ridge = ridge_widths(crop > CORE) * scale
        if ridge.size and float(np.mean(ridge < HAIRLINE)) >= BLOTTED_SHARE:
            width, length = float(np.median(ridge)), ridge.size * scale
    if width >= HAIRLINE or length > MAX_LENGTH:
        return crop
    radius = (TARGET - width) / 2.0 / scale  # in the crop's pixels
    core = crop > CORE
    if radius < 1.0 or not core.any():
        return crop
    core = np.pad(core, int(np.ceil(radius)))
    thick = ndimage.distance_transform_edt(~core) <= radius
    return thick.astype(np.float32)
