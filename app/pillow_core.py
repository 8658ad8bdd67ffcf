"""Pillow's C code for the few small calls made on every digit, without its Python layer.

A 28×28 upload's reading is some 45 calls of 1-5 µs each; Pillow's public API
wraps each of its C functions in Python that checks modes, looks up codecs and
builds ``Image`` objects. For images this small that wrapping costs more than the
work, and the code it runs slows the numpy steps after it (the CPU's caches hold
less of theirs). Through ``Image.frombytes``, ``convert`` and ``tobytes`` a PNG's
inflating took 10.6 µs alone and added 25 to the fast path's other steps; through
these calls, 4.2 and 6-11 (best of five runs of 3,000 calls each).

The calls are those Pillow's image plugins make (its handbook, "Writing your own
file codec in C"): a codec by name from ``Image.core``, ``setimage`` with the
image's extent, ``decode`` or ``encode``; an image core's ``resize``. The results
are Pillow's own, bit for bit (tests/app/test_pillow_core.py holds them to the
public API for every mode and filter used).
"""

from __future__ import annotations

import numpy as np
from PIL import Image

CORE = Image.core


def inflated_grey(deflated: bytes, mode: str, width: int, height: int) -> bytes | None:
    """The grey levels of a PNG's deflated, filtered rows (8 bits a sample, not
    interlaced) in ``mode`` ("L", "LA", "RGB" or "RGBA"), as ``Image.frombytes(mode,
    size, deflated, "zip", mode).convert("L").tobytes()`` gives them; None when the
    data is short or corrupt or, with alpha, any pixel is not opaque."""
    image = CORE.new(mode, (width, height))
    decoder = CORE.zip_decoder(mode, mode)
    decoder.setimage(image, (0, 0, width, height))
    left, error = decoder.decode(deflated)
    if left >= 0 or error != 0:  # as Image.frombytes: not enough data, or corrupt
        return None
    if mode in ("LA", "RGBA") and image.getband(len(mode) - 1).getextrema() != (255, 255):
        return None
    if mode != "L":
        image = image.convert("L")
    return _encoded(image, "L", width * height)


def resized(values: np.ndarray, size: tuple[int, int], resample: Image.Resampling) -> np.ndarray:
    """A 2-D float array resized to ``size`` (width, height) by Pillow's ``resample``
    filter, as ``np.asarray(Image.fromarray(values, "F").resize(size, resample))``
    gives it (float32)."""
    height, width = values.shape
    image = CORE.new("F", (width, height))
    decoder = CORE.raw_decoder("F", "F;32NF", 0, 1)
    decoder.setimage(image, (0, 0, width, height))
    decoder.decode(np.ascontiguousarray(values, dtype=np.float32).tobytes())
    if (width, height) != size:
        image = image.resize(size, resample, (0.0, 0.0, float(width), float(height)))
    pixels = _encoded(image, "F;32NF", 4 * size[0] * size[1])
    return np.frombuffer(pixels, dtype=np.float32).reshape(size[1], size[0])


def _encoded(image: object, rawmode: str, length: int) -> bytes:
    """An image core's pixels, ``length`` bytes in ``rawmode``, as ``tobytes`` gives them."""
    mode = "L" if rawmode == "L" else "F"
    encoder = CORE.raw_encoder(mode, rawmode)
    encoder.setimage(image, (0, 0, *image.size))
    _, done, pixels = encoder.encode(max(length, 1))
    if done != 1:  # the buffer holds every row: one call encodes them all
        raise RuntimeError(f"Pillow's raw encoder stopped short ({done})")
    return pixels
