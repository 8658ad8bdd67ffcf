"""HEIF-family images, as phones save them: HEIC (HEVC) and AVIF (AV1).

Pillow reads AVIF itself; HEIC comes from the ``pillow-heif`` plugin, registered
here once, when the service's preprocessing is first imported. Its embedded
thumbnails, depth maps and auxiliary images are switched off: the digit is read
from the primary image, the one a viewer shows (a thumbnail can differ from it).

Both formats keep their pictures in a container (ISO base media file format)
whose header states each picture's size. ``claimed_size`` reads those sizes
without any decoder, so the service's own pixel limit answers a huge claim
before libheif or libavif parse further (libavif refuses sizes over 16384×16384
by itself, which would otherwise read as "not an image"). The decoders size the
frame they allocate from the coded stream, though, not from the container:
``coded_size`` reads the AV1 sequence headers of an AVIF's pictures (``app.av1``),
so a small claim over a huge frame is refused as well. libheif checks a HEIC's
HEVC frames against the declared size itself, before it allocates them.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator

import pillow_heif

from app import av1

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


MAX_EXTENTS = 4096  # pieces of items in one file (libheif reads at most 1000 items)


class ContainerError(ValueError):
    """The container places its items in more pieces or bytes than the file holds."""


def coded_size(data: bytes) -> tuple[int, int] | None:
    """The largest frame the AV1 streams of a HEIF-family file allow: each ``av01``
    image item's data and configuration (``av1C``), each ``av01`` track's first
    sample (the one decoded) and configuration. None when there are none or the
    container cannot be walked (the decoder then refuses the file); raises
    av1.BitstreamError when a sequence header is cut short, or ContainerError when
    the items' locations are more than any picture needs (more than MAX_EXTENTS
    pieces, or an item longer than the file)."""
    if family(data) is None:
        return None
    try:
        return av1.largest_frame(_av1_streams(data))  # one at a time: each up to the file's size
    except (struct.error, IndexError):
        return None


def _av1_streams(data: bytes) -> Iterator[bytes]:
    for kind, body, end in _boxes(data, 0, len(data)):
        if kind == b"meta":
            yield from _item_streams(data, body + 4, end)
        elif kind == b"moov":
            for trak in _children(data, body, end, b"trak"):
                for stbl in _path(data, trak, (b"mdia", b"minf", b"stbl")):
                    yield from _track_streams(data, *stbl)


def _children(data: bytes, start: int, end: int, kind: bytes) -> Iterator[tuple[int, int]]:
    for child, body, body_end in _boxes(data, start, end):
        if child == kind:
            yield body, body_end


def _path(data: bytes, box: tuple[int, int], kinds: tuple[bytes, ...]) -> Iterator[tuple[int, int]]:
    if not kinds:
        yield box
        return
    for child in _children(data, *box, kinds[0]):
        yield from _path(data, child, kinds[1:])


def _item_streams(data: bytes, start: int, end: int) -> Iterator[bytes]:
    """The configuration and data of each av01 item of a meta box."""
    av01 = set()
    for body, body_end in _children(data, start, end, b"iinf"):
        count_size = 2 if data[body] == 0 else 4
        for info, _ in _children(data, body + 4 + count_size, body_end, b"infe"):
            version = data[info]
            if version >= 2:
                id_size = 2 if version == 2 else 4
                item = int.from_bytes(data[info + 4 : info + 4 + id_size], "big")
                if data[info + 6 + id_size : info + 10 + id_size] == b"av01":
                    av01.add(item)
    for ipco in _path(data, (start, end), (b"iprp", b"ipco")):
        for body, body_end in _children(data, *ipco, b"av1C"):
            yield data[body + 4 : body_end]  # the configuration OBUs
    idat = next(_children(data, start, end, b"idat"), (0, 0))
    for body, body_end in _children(data, start, end, b"iloc"):
        for item, extents in _locations(data, body, body_end, idat):
            if item in av01:
                yield b"".join(data[offset : offset + length] for offset, length in extents)


def _locations(
    data: bytes, body: int, end: int, idat: tuple[int, int]
) -> Iterator[tuple[int, list[tuple[int, int]]]]:
    """(item ID, [(offset in the file, length)]) for each item an iloc box places in
    this file or in the idat box."""
    version = data[body]
    offset_size, length_size = data[body + 4] >> 4, data[body + 4] & 15
    base_size, index_size = data[body + 5] >> 4, data[body + 5] & 15 if version else 0
    position = body + 6
    count_size = 4 if version == 2 else 2
    count = int.from_bytes(data[position : position + count_size], "big")
    position += count_size

    def field(size: int) -> int:
        nonlocal position
        if position + size > end:
            raise IndexError("the iloc box is cut short")
        value = int.from_bytes(data[position : position + size], "big")
        position += size
        return value

    pieces = 0
    for _ in range(count):
        item = field(count_size)
        method = field(2) & 15 if version else 0
        field(2)  # data_reference_index
        base = field(base_size)
        extents, total = [], 0
        for _ in range(field(2)):
            pieces += 1
            field(index_size)
            offset, length = base + field(offset_size), field(length_size)
            if method == 1:  # inside the idat box
                offset += idat[0]
                length = length or idat[1] - offset
            length = min(length or len(data), len(data) - offset)
            total += max(length, 0)
            if pieces > MAX_EXTENTS or total > len(data):
                raise ContainerError("the item locations are corrupt")
            extents.append((offset, length))
        if method in (0, 1):
            yield item, extents


def _track_streams(data: bytes, start: int, end: int) -> Iterator[bytes]:
    """The configuration and first sample of an av01 track (its stbl box)."""
    entries = next(_children(data, start, end, b"stsd"), None)
    if entries is None:
        return
    av01 = False
    for body, body_end in _children(data, entries[0] + 8, entries[1], b"av01"):
        av01 = True
        for config, config_end in _children(data, body + 78, body_end, b"av1C"):
            yield data[config + 4 : config_end]
    sizes = next(_children(data, start, end, b"stsz"), None)
    chunks = next(_children(data, start, end, b"stco"), None)
    wide_chunks = next(_children(data, start, end, b"co64"), None)
    if not av01 or sizes is None or (chunks or wide_chunks) is None:
        return
    size, count = struct.unpack_from(">II", data, sizes[0] + 4)
    if count == 0:
        return
    if size == 0:
        size = struct.unpack_from(">I", data, sizes[0] + 12)[0]
    if chunks is not None:
        offset = struct.unpack_from(">I", data, chunks[0] + 8)[0]
    else:
        offset = struct.unpack_from(">Q", data, wide_chunks[0] + 8)[0]
    yield data[offset : offset + size]
