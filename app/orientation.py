"""Which way an image is stored: its EXIF orientation, and the turn that undoes it.

Read from the opened image before any pixel work, since a reduced copy drops the
tags that hold it; ``preprocessing.decode`` turns the image after reducing it (a
12 MP photo is not copied whole to turn it). TIFF, PNG, JPEG, WebP and AVIF all
report it as EXIF; libheif turns a HEIC itself as it decodes it.
"""

from __future__ import annotations

import contextlib

from PIL import ExifTags, Image

# EXIF orientation -> the transpose that turns the stored pixels upright (as
# ImageOps.exif_transpose does).
TURNS = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}


def of(image: Image.Image) -> int:
    """The EXIF orientation of an opened image; 1 when absent or unreadable."""
    with contextlib.suppress(Exception):  # a corrupt EXIF block must not cost the image
        return int(image.getexif().get(ExifTags.Base.Orientation, 1))
    return 1


def upright_size(image: Image.Image) -> tuple[int, int]:
    """An opened image's width and height as ``preprocessing.decode`` turns it,
    before it reduces it."""
    width, height = image.size
    if image.format == "TIFF":  # Pillow reports a TIFF's upright size and turns it as it loads
        return width, height
    return (height, width) if of(image) in (5, 6, 7, 8) else (width, height)
