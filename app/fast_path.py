"""The network input of a small clean PNG, without the general machinery.

Most uploads are MNIST-sized PNGs and small drawings: at most MAX_SIDE px a
side, 8-bit grey, RGB or opaque RGBA, one grey level all round the border. For
them ``app.preprocessing`` does work that cannot change the answer: Pillow's
PNG plugin and EXIF reading, sorting every pixel twice, two Otsu thresholds over
every pixel, a noise floor that is 0 on a one-level paper. Here the PNG's chunks
are read with ``struct`` and inflated by Pillow's own decoder (``app.pillow_core``),
and the statistics of ``preprocessing.ink_strength`` come from a 256-level histogram
(``levels.otsu_of_counts``, ``levels.quantiles_of_counts``) and per-level
lookup tables. A micro-batch's PNGs are read together (``inputs_and_inks``):
each step for all of them in a row, their strokes labelled in one call.

The answer is the general path's, bit for bit (tests hold it to
``preprocessing.normalize_digit`` on many inputs). Anything else, and any doubt
(a chunk not known to leave the pixels alone, a bad CRC, a decoding error, an
image the general path would refuse) gets None, and the general path answers,
errors included.
"""

from __future__ import annotations

import functools
import struct
import zlib

import numpy as np
from PIL import PngImagePlugin

from app import ink_blobs, levels, pillow_core, preprocessing
from app import paper as paper_side
from app.paper import may_even

MAX_SIDE = 64  # 64 × 64 = levels.OTSU_SAMPLE: Otsu sees every pixel, as the histogram does
MIN_SIDE = 3  # a border and something inside it
# Larger files go to the general path unread (the fast path runs on the event loop):
# a 64×64 RGBA PNG is at most ~16 kB of pixels, plus an ICC profile.
MAX_BYTES = 64 * 1024
SIGNATURE = b"\x89PNG\r\n\x1a\n"
# Ancillary chunks Pillow keeps as information only: they change neither the
# pixels it decodes nor their orientation (text and eXIf chunks can hold EXIF); with
# the least length Pillow reads each with (shorter, it refuses the file).
INERT_CHUNKS = {b"sRGB": 1, b"gAMA": 4, b"cHRM": 32, b"pHYs": 9, b"iCCP": 3, b"tIME": 0}
MODES = {0: "L", 2: "RGB", 4: "LA", 6: "RGBA"}  # PNG colour type, 8 bits a sample
DEFAULT_LIMITS = preprocessing.Limits()


def preprocess(data: bytes, limits: preprocessing.Limits = DEFAULT_LIMITS) -> np.ndarray:
    """Upload bytes -> the network's 28×28×1 input: ``preprocessing.preprocess``'s
    answer, by the fast path when the upload is a small clean PNG."""
    fast = small_clean_png(data, limits)
    return fast if fast is not None else preprocessing.preprocess(data, limits)


def may_take(data: bytes) -> bool:
    """Whether an upload may be a small clean PNG, from its first bytes alone: a PNG
    signature, an IHDR of sides up to MAX_SIDE, in at most MAX_BYTES (``input_and_ink``
    decides)."""
    if len(data) > MAX_BYTES or not data.startswith(SIGNATURE) or data[12:16] != b"IHDR":
        return False
    width, height = struct.unpack_from(">II", data, 16) if len(data) >= 24 else (0, 0)
    return MIN_SIDE <= width <= MAX_SIDE and MIN_SIDE <= height <= MAX_SIDE


def small_clean_png(data: bytes, limits: preprocessing.Limits) -> np.ndarray | None:
    """The 28×28×1 input of a small clean PNG, or None when the upload needs the
    general path."""
    read = input_and_ink(data, limits)
    return None if read is None else read[0]


def input_and_ink(
    data: bytes, limits: preprocessing.Limits
) -> tuple[np.ndarray, np.ndarray] | None:
    """``preprocessing.input_and_ink`` of a small clean PNG, or None when the upload
    needs the general path."""
    return inputs_and_inks([data], limits)[0]


def inputs_and_inks(
    uploads: list[bytes], limits: preprocessing.Limits
) -> list[tuple[np.ndarray, np.ndarray] | None]:
    """``input_and_ink`` of each upload, step by step for all of them: 20 PNGs cost
    78-90 against 114-138 µs each read in turn (``python -m bench.components``), the
    same calls in a row running faster, and one labelling serving them all."""
    greys = [_png_grey(data, limits) for data in uploads]
    strengths = [None if grey is None else _ink_strength(grey) for grey in greys]
    inks = iter(ink_blobs.digit_inks([strength for strength in strengths if strength is not None]))
    return [None if strength is None else _fitted(next(inks)) for strength in strengths]


def _fitted(ink: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    """The network's input cut from the digit's ink, and the ink; None when there is
    none (the general path says so)."""
    try:
        return preprocessing.fit_to_mnist(ink, clean=True)[..., np.newaxis], ink
    except preprocessing.NoDigitError:
        return None


def _png_grey(data: bytes, limits: preprocessing.Limits) -> np.ndarray | None:
    """The grey levels (uint8) of a small opaque 8-bit PNG, as ``grey_levels`` reads
    them, when its border is one level."""
    if len(data) > MAX_BYTES or not data.startswith(SIGNATURE):
        return None
    header, idat, position = None, [], len(SIGNATURE)
    while True:
        if position + 12 > len(data):
            return None  # no IEND
        length, kind = struct.unpack_from(">I4s", data, position)
        end = position + 8 + length
        if end + 4 > len(data):
            return None
        view = memoryview(data)[position + 4 : end]
        if zlib.crc32(view) != struct.unpack_from(">I", data, end)[0]:
            return None
        if header is None:
            if kind != b"IHDR" or length != 13:
                return None
            header = struct.unpack_from(">IIBBBBB", data, position + 8)
            width, height, depth, colour, compression, filtering, interlace = header
            if (
                colour not in MODES
                or (depth, compression, filtering, interlace) != (8, 0, 0, 0)
                or not (MIN_SIDE <= width <= MAX_SIDE and MIN_SIDE <= height <= MAX_SIDE)
                or width * height > limits.max_pixels
            ):
                return None
        elif kind == b"IDAT":
            idat.append(view[4:])
        elif kind == b"IEND":
            break
        elif idat or kind not in INERT_CHUNKS or not _inert(kind, view[4:]):
            return None  # after the pixels only IEND: anything else, Pillow decides
        position = end + 4
    if not idat:
        return None
    width, height, mode = header[0], header[1], MODES[header[3]]
    pixels = pillow_core.inflated_grey(b"".join(idat), mode, width, height)
    if pixels is None:
        return None
    # One grey level all round the border (checked on the bytes: cheaper than numpy).
    paper = pixels[:1]
    for side in (pixels[:width], pixels[-width:], pixels[::width], pixels[width - 1 :: width]):
        if side.count(paper) != len(side):
            return None
    grey = np.frombuffer(pixels, dtype=np.uint8).reshape(height, width)
    # Nor a frame round the image: the general path looks past one (``paper.side``),
    # where the border's class, and so its level, covers under half the image.
    if 2 * pixels.count(paper) < len(pixels) and _framed(grey):
        return None
    return grey


def _framed(grey: np.ndarray) -> bool:
    """Whether a ring at most ``paper.frame_depth`` in shows the border's level on at
    most 1 - BORDER_MAJORITY of it, as a frame's inside does."""
    for depth in range(1, paper_side.frame_depth(grey.shape) + 1):
        ring = paper_side.ring(grey, depth)
        if np.count_nonzero(ring == grey[0, 0]) <= (1 - paper_side.BORDER_MAJORITY) * ring.size:
            return True
    return False


def _inert(kind: bytes, body: memoryview) -> bool:
    """Whether Pillow reads an inert chunk without complaint: long enough, and an ICC
    profile named, deflated (method 0) and inflating within Pillow's limit."""
    if len(body) < INERT_CHUNKS[kind]:
        return False
    if kind != b"iCCP":
        return True
    name_end = bytes(body[:80]).find(b"\0")
    if name_end < 1 or name_end + 1 >= len(body) or body[name_end + 1] != 0:
        return False
    inflater = zlib.decompressobj()
    try:
        inflater.decompress(body[name_end + 2 :], PngImagePlugin.MAX_TEXT_CHUNK)
    except zlib.error:
        return False  # Pillow reads on without the profile: the general path does
    return not inflater.unconsumed_tail


@functools.lru_cache(maxsize=512)  # every paper level, dark ink or light
def _contrast(paper: int, dark_ink: bool) -> np.ndarray:
    """``paper.ink_contrast`` of every grey level on paper of level ``paper``
    (read-only: it is shared)."""
    contrast = paper_side.ink_contrast(levels.WHOLE_LEVELS, float(paper), dark_ink)
    contrast.flags.writeable = False
    return contrast


def _ink_strength(grey: np.ndarray) -> preprocessing.InkStrength | None:
    """``preprocessing.ink_strength`` of an image whose border is one grey level.

    Its paper is then that level and its noise floor 0 (the paper's shades do not
    spread), so every pixel's ink follows from its level: the statistics are taken
    over the histogram and applied through 256-entry tables.
    """
    paper = grey[0, 0]
    counts = np.bincount(grey.ravel(), minlength=256)
    present = counts.nonzero()[0]
    shown, shown_counts = levels.WHOLE_LEVELS[present], counts[present]
    running = np.add.accumulate(shown_counts)
    darkest, brightest = levels.quantiles_of_counts(shown, running, (0.001, 0.999))
    background = float(paper)
    if (
        brightest - darkest < preprocessing.MIN_CONTRAST
        or max(background - darkest, brightest - background) < preprocessing.MIN_CONTRAST
    ):
        return None  # no digit: the general path says so
    if may_even(brightest - darkest, grey.shape):
        return None  # the general path may even its light first (a faint photo)
    # The full path's paper is dark when its level is at most Otsu's threshold, which
    # lies between the darkest level and the brightest (exclusive): a paper at either
    # end (MNIST, most drawings) needs no threshold.
    if paper == present[0]:
        dark_ink = False
    elif paper == present[-1]:
        dark_ink = True
    else:
        dark_ink = background > levels.otsu_of_counts(shown, shown_counts)
    contrast = _contrast(int(paper), dark_ink)
    ink_levels, ink_counts = contrast[present], shown_counts
    if dark_ink:  # ascending ink
        ink_levels, ink_counts = ink_levels[::-1], ink_counts[::-1]
    if float(ink_levels[-1]) < preprocessing.MIN_CONTRAST:
        return None  # too faint: the general path says so
    # The strokes are the levels over Otsu's threshold: those after its split.
    split = levels.otsu_split(ink_levels, ink_counts)
    threshold = max(float(ink_levels[split]), 0.0)
    (peak,) = levels.quantiles_of_counts(
        ink_levels[split + 1 :],
        np.add.accumulate(ink_counts[split + 1 :]),
        (preprocessing.STROKE_CORE_QUANTILE,),
    )
    full = preprocessing.unit_clipped(contrast / peak)  # as ink_strength does, its floor being 0
    strokes = (contrast > threshold).take(grey)  # per level, then per pixel
    return preprocessing.InkStrength(full.take(grey), strokes, noisy=False)
