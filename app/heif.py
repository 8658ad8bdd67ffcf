"""HEIF-family images, as phones save them: HEIC (HEVC) and AVIF (AV1).

Pillow reads AVIF itself; HEIC comes from the ``pillow-heif`` plugin, registered
here once, when the service's preprocessing is first imported. Its embedded
thumbnails, depth maps and auxiliary images are switched off: the digit is read
from the primary image, the one a viewer shows (a thumbnail can differ from it).

Both formats keep their pictures in a container (ISO base media file format)
whose header states each picture's size. ``claimed_size`` reads those sizes
without any decoder, so the service's own pixel limit answers a huge claim
before libheif or libavif parse further (libavif refuses sizes over 16384×16384
by itself, which would otherwise read as "not an image").
"""

from __future__ import annotations

import struct
from collections.abc import Iterator

import pillow_heif

FORMATS = ("HEIF", "AVIF")  # Pillow's names for the two: HEIC/HEIF files, AVIF files
HEIF_BRANDS = {b"heic", b"heix", b"heim", b"heis", b"hevc", b"hevx", b"hevm", b"hevs"}
AVIF_BRANDS = {b"avif", b"avis"}
GENERAL_BRANDS = {b"mif1", b"msf1"}  # either codec; the compatible brands say which

pillow_heif.register_heif_opener(thumbnails=False, depth_images=False, aux_images=False)


def family(data: bytes) -> str | None:
    """The family the file's ftyp box names: AVIF, HEIC, or HEIF (either); else None."""
    if len(data) < 12 or data[4:8] != b"ftyp":
        return None
    size = struct.unpack(">I", data[:4])[0]
    brands = {data[8:12]} | {data[i : i + 4] for i in range(16, min(size, 256) - 3, 4)}
    if brands & AVIF_BRANDS:
        return "AVIF"
    if brands & HEIF_BRANDS:
        return "HEIC"
    return "HEIF" if data[8:12] in GENERAL_BRANDS else None


def claimed_size(data: bytes) -> tuple[int, int] | None:
    """The largest picture a HEIF-family header declares, as (width, height): every
    image item's spatial extents (``ispe``) and every track's size (``tkhd``, for
    image sequences); None for other files or when the header declares none."""
    if family(data) is None:
        return None
    sizes = list(_declared_sizes(data, 0, len(data), _SIZE_BOXES))
    return max(sizes, key=lambda size: size[0] * size[1]) if sizes else None


# Where the sizes are: box type -> (bytes before its children, the children to
# look into), or None for the box that holds a size. Only these paths are walked.
_SIZE_BOXES: dict = {
    b"meta": (4, {b"iprp": (0, {b"ipco": (0, {b"ispe": None})})}),
    b"moov": (0, {b"trak": (0, {b"tkhd": None})}),
}


def _declared_sizes(data: bytes, start: int, end: int, tree: dict) -> Iterator[tuple[int, int]]:
    for kind, body, body_end in _boxes(data, start, end):
        if kind not in tree:
            continue
        if tree[kind] is not None:
            skip, children = tree[kind]
            yield from _declared_sizes(data, body + skip, body_end, children)
        elif kind == b"ispe" and body_end - body >= 12:  # version, flags, width, height
            yield struct.unpack(">II", data[body + 4 : body + 12])
        elif kind == b"tkhd" and body_end - body >= 8:  # ends with width, height in 16.16
            width, height = struct.unpack(">II", data[body_end - 8 : body_end])
            yield width >> 16, height >> 16


def _boxes(data: bytes, start: int, end: int) -> Iterator[tuple[bytes, int, int]]:
    """(type, body start, body end) of each box between start and end; stops at the
    first box that does not fit (a truncated or corrupt file: the decoder says so)."""
    position = start
    while position + 8 <= end:
        size, kind = struct.unpack(">I4s", data[position : position + 8])
        header = 8
        if size == 1 and position + 16 <= end:
            size, header = struct.unpack(">Q", data[position + 8 : position + 16])[0], 16
        elif size == 0:
            size = end - position
        if size < header or position + size > end:
            return
        yield kind, position + header, position + size
        position += size
