"""Ways real handwriting differs from MNIST, as transforms of an ink image.

An ink image is float32 in [0, 1], ink bright on black, any size. MNIST digits
are anti-aliased, mid-weight, upright strokes with a margin and their own aspect
ratio; people send tight crops, box-normalised scans (stretched to fill 16×16 or
32×32, often binarised), 8×8 thumbnails, marker and hairline pens, slanted and
rotated writing. The training recipe (``model.augment``) and the project's
measure of the world (``model.world``) both draw on these, so they agree on what
each kind means.
"""

from __future__ import annotations

import numpy as np
from PIL import Image
from scipy import ndimage


def resized(ink: np.ndarray, width: int, height: int, resample=Image.Resampling.BICUBIC):
    image = Image.fromarray(ink.astype(np.float32), mode="F")
    return np.clip(np.asarray(image.resize((max(1, width), max(1, height)), resample)), 0, 1)


def mnist_ink(digit: np.ndarray, size: int = 112) -> np.ndarray:
    """An MNIST digit (uint8, ink bright) as an ink image ``size`` px square."""
    return resized(digit.astype(np.float32) / 255.0, size, size)


def enlarged(ink: np.ndarray, factor: int, resample=Image.Resampling.NEAREST) -> np.ndarray:
    height, width = ink.shape
    return resized(ink, width * factor, height * factor, resample)


def cropped(ink: np.ndarray, margin: int = 0, level: float = 0.05) -> np.ndarray:
    """Cut to the ink's bounding box, keeping ``margin`` px of background around it."""
    rows = np.flatnonzero((ink > level).any(axis=1))
    columns = np.flatnonzero((ink > level).any(axis=0))
    if rows.size == 0:
        return ink
    top, bottom = max(rows[0] - margin, 0), min(rows[-1] + 1 + margin, ink.shape[0])
    left, right = max(columns[0] - margin, 0), min(columns[-1] + 1 + margin, ink.shape[1])
    return ink[top:bottom, left:right]


def padded(ink: np.ndarray, top: int, bottom: int, left: int, right: int) -> np.ndarray:
    return np.pad(ink, ((top, bottom), (left, right)))


def box_normalised(ink: np.ndarray, side: int, keep_aspect: bool = False) -> np.ndarray:
    """The digit alone, scaled to fill a side×side box (stretched, unless
    ``keep_aspect``, as postal and form scans are), anti-aliased."""
    digit = cropped(ink)
    height, width = digit.shape
    if keep_aspect:
        scale = side / max(height, width)
        digit = resized(digit, round(width * scale), round(height * scale), Image.Resampling.BOX)
        canvas = np.zeros((side, side), dtype=np.float32)
        top, left = (side - digit.shape[0]) // 2, (side - digit.shape[1]) // 2
        canvas[top : top + digit.shape[0], left : left + digit.shape[1]] = digit
        return canvas
    return resized(digit, side, side, Image.Resampling.BOX)


def binarised(ink: np.ndarray, level: float = 0.5) -> np.ndarray:
    return (ink > level).astype(np.float32)


def restroked(ink: np.ndarray, change: int, supersample: int = 2) -> np.ndarray:
    """Strokes made ``change`` px wider (a marker) or narrower (a hairline pen, if
    negative) at the image's scale, reshaped on a supersampled copy."""
    if change == 0:
        return ink
    height, width = ink.shape
    strokes = enlarged(ink, supersample, Image.Resampling.BICUBIC) > 0.5
    radius = abs(change) * supersample / 2
    if change > 0:
        shaped = ndimage.distance_transform_edt(~strokes) <= radius
    else:
        depth = ndimage.distance_transform_edt(strokes)
        # Never erase a stroke: its ridge (the deepest line along it) stays.
        ridge = strokes & (depth >= ndimage.maximum_filter(depth, size=3))
        shaped = ndimage.binary_dilation((depth > radius) | ridge, iterations=1)
    return resized(shaped.astype(np.float32), width, height, Image.Resampling.BOX)


def affine(ink: np.ndarray, degrees: float = 0.0, shear: float = 0.0, pad: int = 0) -> np.ndarray:
    """Rotated by ``degrees`` and slanted by ``shear`` (x += shear · (centre - y)),
    about the centre, on a canvas grown by ``pad`` px each side."""
    ink = np.pad(ink, pad)
    radians = np.deg2rad(degrees)
    cos, sin = np.cos(radians), np.sin(radians)
    # Output (row, col) reads input at matrix @ (row, col) + offset.
    rotation = np.array([[cos, sin], [-sin, cos]])
    slant = np.array([[1.0, 0.0], [shear, 1.0]])
    matrix = np.linalg.inv(slant @ rotation)
    centre = (np.array(ink.shape) - 1) / 2.0
    offset = centre - matrix @ centre
    return ndimage.affine_transform(ink, matrix, offset, order=1, mode="constant")


def elastic(ink: np.ndarray, rng: np.random.Generator, alpha: float, sigma: float) -> np.ndarray:
    """Simard's elastic distortion: a smooth random displacement field."""
    shape = ink.shape
    dx = ndimage.gaussian_filter(rng.uniform(-1, 1, shape), sigma) * alpha
    dy = ndimage.gaussian_filter(rng.uniform(-1, 1, shape), sigma) * alpha
    rows, columns = np.meshgrid(np.arange(shape[0]), np.arange(shape[1]), indexing="ij")
    return ndimage.map_coordinates(ink, (rows + dy, columns + dx), order=1, mode="constant")


def on_paper(ink: np.ndarray, dark_ink: bool = True) -> np.ndarray:
    """Grey levels 0..255 (uint8) as a scan shows them: dark ink on white, or light on black."""
    levels = 255.0 * (1.0 - ink) if dark_ink else 255.0 * ink
    return np.clip(np.rint(levels), 0, 255).astype(np.uint8)
