"""Turn any uploaded image into the 28×28×1 input the network expects.

The steps redo what the MNIST authors did to scanned digits, after undoing what
cameras, canvases and apps do to them:

1. decode safely: known formats only, dimensions checked before any pixel is
   decoded, big JPEGs decoded at reduced scale, first frame of animations and
   the primary image of a HEIC/AVIF, EXIF orientation applied;
2. grey, with transparency composited onto a background that contrasts with
   the strokes (canvas drawings are dark or light strokes on nothing); a faint
   photo (under 64 grey levels) loses the light that varies gently over it (a
   quadratic surface fitted to its paper), and is blank if only noise is left; the
   desk around a photographed page painted as the page (``desk.on_the_page``: by its
   grey levels, or by its colour where a shadow hides the page's edge) and a shadow
   across it relit (``paper.out_of_shade``);
3. polarity: the paper is what the border shows (or, past a thin frame round
   the image, what the ring inside it shows), unless ink touches the border and
   the corners show the other class (a digit filling its frame), or, when neither
   decides, the class (of Otsu's two) that covers more of the image; ink becomes
   bright on dark;
4. uneven light removed on larger images whose paper varies (a morphological
   background estimate);
5. ink found against noise: an Otsu threshold, printed lines erased (ruled or
   squared paper, a form's box: ``app.rules``), connected components (strokes
   joined through their faint pixels, as hysteresis does), specks dropped, marks
   cut by the edge dropped when a digit lies inside the frame (``app.ink_blobs``);
6. crop to the ink, grow hairline strokes to MNIST's width (``app.strokes``),
   scale the longer side to 20 px keeping the aspect ratio (anti-aliased, grey
   levels kept), place in 28×28 with the centre of mass at the centre, scale to
   [0, 1].

A photo (JPEG, HEIC, AVIF) goes through steps 2-5 at GLANCE_SIZE first, and again
at WORKING_SIZE only when its digit spans under GLANCE_MIN_DIGIT px there: a digit
that fills a good part of the frame loses nothing the 20 px fit keeps (999 of
1,000 rendered photos read the same digit either way), in two thirds of the time.

An MNIST digit goes through unchanged. No web framework in here: errors are
``PreprocessingError`` subclasses that the HTTP layer maps to status codes.
"""

from __future__ import annotations

import contextlib
import functools
import io
import math
import warnings
from dataclasses import dataclass

import numpy as np
from PIL import Image, UnidentifiedImageError

from app import av1, desk, heif, levels, orientation, paper, pillow_core, strokes
from app.ink_blobs import FAINT_INK, bounds, digit_ink, dilated, halo

INPUT_SIZE = 28
DIGIT_BOX = 20  # MNIST fits each digit in 20×20 ...
CENTRE = INPUT_SIZE / 2  # ... and puts its centre of mass here (pixel-index coordinates)
POSITIONS = np.arange(INPUT_SIZE)  # pixel indices along a side: the crop's, at most DIGIT_BOX
ACCEPTED_FORMATS = ("PNG", "JPEG", "GIF", "BMP", "WEBP", "TIFF", *heif.FORMATS)
WORKING_SIZE = 512  # larger images are reduced to this before the pixel work
JPEG_DRAFT = {"L": "L", "RGB": "YCbCr"}  # a JPEG's mode -> the mode libjpeg decodes it to
GLANCE_SIZE = 200  # a photo is read at this size first ...
GLANCE_MIN_DIGIT = 64  # ... and that reading kept when its digit spans this many px there
PHOTO_FORMATS = ("JPEG", *heif.FORMATS)  # what cameras save
MIN_CONTRAST = 16.0  # grey levels between background and ink, out of 255
# A faint digit's share of the pixels past the noise floor (Gaussian noise: 0.003 %)
FAINT_MASS = 0.005
STROKE_CORE_QUANTILE = 0.9  # stroke pixels above this quantile are full ink


class PreprocessingError(ValueError):
    """The upload cannot be turned into a digit; the message says why."""


class EmptyImageError(PreprocessingError):
    """The upload has no bytes."""


class UnsupportedImageError(PreprocessingError):
    """Not an image, a format we do not read, or a truncated or corrupt file."""


class ImageTooLargeError(PreprocessingError):
    """The image's dimensions exceed the configured pixel limit."""


class NoDigitError(PreprocessingError):
    """The image decodes but shows no ink: blank, one colour or no contrast."""


@dataclass(frozen=True)
class Limits:
    max_pixels: int = 16_000_000


def open_image(data: bytes, limits: Limits = Limits()) -> Image.Image:
    """Identify an upload from its header alone; no pixel is decoded yet.

    Rejects empty files, unknown formats and images over the pixel limit, so a
    decompression bomb costs a header read.
    """
    if not data:
        raise EmptyImageError("The file is empty.")
    claimed = heif.claimed_size(data)
    if claimed is not None:
        _check_size(*claimed, limits)
    _check_coded_size(data, claimed, limits)
    try:
        with warnings.catch_warnings():
            # Our own limit, checked below, is the one that answers; Pillow's
            # warning would only repeat it (its hard error still applies).
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data), formats=ACCEPTED_FORMATS)
    except UnidentifiedImageError:
        if family := heif.family(data):
            raise UnsupportedImageError(
                f"The {family} file could not be read: its header is truncated or corrupt."
            ) from None
        raise UnsupportedImageError(
            f"The file is not an image in a supported format ({', '.join(ACCEPTED_FORMATS)})."
        ) from None
    except Image.DecompressionBombError:
        raise ImageTooLargeError(
            f"The image is far over the limit of {limits.max_pixels:,} pixels."
        ) from None
    except Exception as error:  # Pillow raises OSError, SyntaxError, ValueError, ...
        raise UnsupportedImageError(f"The image header could not be read ({error}).") from None
    _check_size(*image.size, limits)
    return image


def _check_coded_size(data: bytes, claimed: tuple[int, int] | None, limits: Limits) -> None:
    """An AVIF's frames are as large as its AV1 stream says, whatever its header claims."""
    try:
        coded = heif.coded_size(data)
    except (av1.BitstreamError, heif.ContainerError) as error:
        raise UnsupportedImageError(f"The AVIF file could not be read: {error}.") from None
    if coded is not None and coded[0] * coded[1] > limits.max_pixels:
        width, height = coded
        declared = f"declares {claimed[0]}x{claimed[1]} pixels but " if claimed else ""
        raise ImageTooLargeError(
            f"The image {declared}its AV1 stream holds frames of {width}x{height} = "
            f"{width * height:,} pixels; the limit is {limits.max_pixels:,}."
        )


def _check_size(width: int, height: int, limits: Limits) -> None:
    if width < 1 or height < 1:
        raise UnsupportedImageError("The image has no pixels.")
    if width * height > limits.max_pixels:
        raise ImageTooLargeError(
            f"The image is {width}x{height} = {width * height:,} pixels; "
            f"the limit is {limits.max_pixels:,}."
        )


def decode(image: Image.Image) -> Image.Image:
    """Decode the first frame of an opened image, upright, at most WORKING_SIZE."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            if image.format == "JPEG":
                # Let libjpeg decode at 1/2, 1/4 or 1/8 scale: a 12 MP photo costs
                # a fraction of its full decode.
                # A colour JPEG as libjpeg holds it, YCbCr: its Y is the grey it
                # decodes alone, level for level, and its colour tells a page from the
                # desk around it (``app.desk``).
                image.draft(JPEG_DRAFT.get(image.mode), (WORKING_SIZE,) * 2)
            image.load()
            turn = orientation.TURNS.get(orientation.of(image))
            if image.mode == "LAB":  # a CIELab TIFF: Pillow converts LAB to RGB only
                image = image.convert("RGB")
            if max(image.size) > WORKING_SIZE:
                image = _reduced(image)
            if turn is not None:  # after reducing: turning a 12 MP photo would copy it whole
                image = image.transpose(turn)
    except Image.DecompressionBombError:
        raise ImageTooLargeError("The image decompresses to too many pixels.") from None
    except Exception as error:  # truncated or corrupt data: OSError, SyntaxError, ...
        reason = str(error).strip()  # libheif's messages end in a newline
        raise UnsupportedImageError(f"The image could not be decoded ({reason}).") from None
    return image


def _reduced(image: Image.Image, side: int = WORKING_SIZE) -> Image.Image:
    # Modes the resampler reads are reduced as they are: converting a 16 MP CMYK
    # image to RGB first would cost another 48 MB while it is decoded.
    if image.mode not in ("1", "L", "LA", "RGB", "YCbCr", "RGBA", "CMYK", "I", "F"):
        image = image.convert("RGBA" if _has_alpha(image) else "RGB")
    elif image.mode == "1":
        image = image.convert("L")
    # Whole blocks averaged first (a box filter too, at a quarter of the resampler's
    # cost on a 12 MP photo), the remaining fraction by the resampler.
    factor = max(image.size) // side
    if factor > 1:
        image = image.reduce(factor)
    image.thumbnail((side, side), Image.Resampling.BOX, reducing_gap=None)
    return image


def _has_alpha(image: Image.Image) -> bool:
    return image.mode in ("RGBA", "LA", "PA", "RGBa", "La") or "transparency" in image.info


def grey_levels(image: Image.Image) -> np.ndarray:
    """The image as float32 grey levels in [0, 255], transparency composited."""
    if image.mode in ("I;16", "I;16L", "I;16B", "I;16N"):
        return np.asarray(image, dtype=np.float32) / 257.0
    if image.mode in ("I", "F"):
        values = np.asarray(image, dtype=np.float64)
        finite = np.isfinite(values)
        if not finite.all():  # NaN or infinity in a float TIFF: the lowest level instead
            values = np.where(finite, values, values[finite].min() if finite.any() else 0.0)
        low, high = float(values.min()), float(values.max())
        scale = 255.0 / (high - low) if high > low else 0.0
        return ((values - low) * scale).astype(np.float32)
    if _has_alpha(image):
        rgba = np.asarray(image.convert("LA"), dtype=np.float32)
        grey, alpha = rgba[..., 0], rgba[..., 1] / 255.0
        if alpha.min() < 1.0:
            grey = grey * alpha + _backdrop(grey, alpha > 0.5) * (1.0 - alpha)
        return grey
    if image.mode != "L":
        image = image.convert("L")
    return np.asarray(image, dtype=np.float32)


def page_levels(image: Image.Image) -> np.ndarray:
    """``grey_levels``, the surface around a photographed page painted as the page
    (``desk.on_the_page``) and a shadow on it relit (``paper.out_of_shade``): what
    every reading of an upload starts from."""
    return page_levels_of(grey_levels(image), colour=_colour(image))


def page_levels_of(
    grey: np.ndarray, side: int | None = None, colour: Image.Image | None = None
) -> np.ndarray:
    """``page_levels`` of ``grey``; ``side``: the shorter side of the image ``grey`` was
    reduced from, if it was (a photo's glance); ``colour``: the image, where it is in
    colour (``_colour``; at any size)."""
    return paper.out_of_shade(desk.on_the_page(grey, side, colour))


def _colour(image: Image.Image) -> Image.Image | None:
    """The image, where it is in colour (RGB, or YCbCr as a JPEG decodes): else None."""
    return image if image.mode in ("RGB", "YCbCr") else None


def _backdrop(grey: np.ndarray, opaque: np.ndarray) -> float:
    """The grey level to composite an image's transparent pixels onto."""
    if not opaque.any():
        return 0.0
    shown = grey[opaque]
    darkest, brightest = np.quantile(shown, (0.01, 0.99))
    if brightest - darkest < MIN_CONTRAST:
        # Strokes of one colour shaped by their alpha (a canvas drawing): the
        # opposite colour, so that dark strokes and light ones both show.
        return 255.0 if float(shown.mean()) < 128.0 else 0.0
    # The opaque part has paper and ink of its own (a cut-out, a sticker with a
    # halo): continue its paper, the colour where it meets the transparency (or,
    # when every pixel is at least half opaque, its commonest grey).
    rim = opaque & dilated(~opaque, 1)
    return float(np.median(grey[rim] if rim.any() else shown))


@dataclass(frozen=True)
class InkStrength:
    """How much ink each pixel shows, before any blob is chosen."""

    ink: np.ndarray  # float32 in [0, 1], bright on dark
    strokes: np.ndarray  # bool: the pixels that are surely ink (over Otsu and the noise floor)
    noisy: bool  # the background is not clean (noise or flattened paper) away from the strokes
    # Where a clean image leaves its paper in doubt (not ``paper.Paper.sure``): the
    # ``paper_dark`` that reads it the other way round (``readings``); else None.
    other_side: bool | None = None


def ink_strength(grey: np.ndarray, paper_dark: bool | None = None) -> InkStrength:
    """Ink strength in [0, 1] per pixel and the stroke pixels; every mark is kept.
    ``paper_dark``: the paper's side, when the caller knows it (``paper.side``)."""
    ordered = levels.ascending(grey)
    darkest, brightest = levels.quantile(ordered, 0.001), levels.quantile(ordered, 0.999)
    if brightest - darkest < MIN_CONTRAST:
        raise NoDigitError("No digit found: the image is blank or a single colour.")
    span = brightest - darkest
    evened = None
    if paper.may_even(span, grey.shape):
        # A faint photo: light varying gently over it would be split by Otsu (its
        # darker half taken for ink), so it is taken away first.
        faint = span < paper.SMOOTH_LIGHT_SPAN
        evened = paper.evened(grey, np.inf if faint else paper.FAINT_NOISE)
    if evened is not None:
        grey = evened
        ordered = np.sort(grey, axis=None)
        darkest, brightest = levels.quantile(ordered, 0.001), levels.quantile(ordered, 0.999)
        if _only_noise(ordered):
            raise NoDigitError("No digit found: the image is blank or a single colour.")
    found = paper.side(ordered, paper.ring(grey, 0), grey, paper_dark)
    paper_is_dark, paper_shades, threshold = found.dark, found.shades, found.threshold
    background = levels.quantile(paper_shades, 0.5)
    if max(background - darkest, brightest - background) < MIN_CONTRAST:
        raise NoDigitError("No digit found: the image is blank or a single colour.")
    dark_ink = not paper_is_dark
    # Photos: the paper's brightness varies (shadows, a lamp to one side), so the
    # background is estimated per pixel rather than taken as one level. Clean
    # images (a scan, a canvas, a bitmap enlarged) keep one level: the per-pixel
    # estimate would eat the strokes of a digit that fills its frame.
    ink_level = brightest if paper_is_dark else darkest
    backdrop = None  # the paper per pixel, where the light varies
    if min(grey.shape) >= paper.FLATTEN_MIN_SIDE and paper.uneven(
        grey, paper_is_dark, threshold, ink_level
    ):
        backdrop = paper.background(grey, dark_ink)
        if paper.took_in_strokes(backdrop, paper_is_dark, threshold, ink_level):
            backdrop = None  # strokes wider than its window (a bitmap's 1 enlarged)
    measured = functools.partial(paper.contrast, grey, ordered, background, found)
    ink, ink_ordered, floor = measured(backdrop)
    if (
        backdrop is not None
        and float(ink_ordered[-1]) - floor < MIN_CONTRAST
        and paper.pen_ink(ink_level, threshold)
    ):
        # The per-pixel paper took in the strokes (a heavy digit running along a
        # side, its glow taken for uneven light): read the paper as one level.
        backdrop = None
        ink, ink_ordered, floor = measured(backdrop)
    if float(ink_ordered[-1]) - floor < MIN_CONTRAST:
        raise NoDigitError("No digit found: the marks are too faint to read.")
    strokes = ink > max(levels.otsu(ink_ordered), floor)
    # Full ink is what the strokes' cores reach, as in MNIST, where the top tenth
    # of stroke pixels is saturated: a lighter pen or a dim photo reads the same.
    stroke_values = np.sort(ink[strokes])
    peak = levels.quantile(stroke_values, STROKE_CORE_QUANTILE)
    ink = unit_clipped((ink - floor) / (peak - floor))
    noisy = floor > 0.0 or backdrop is not None
    doubt = not (found.sure or noisy or paper_dark is not None)
    return InkStrength(ink, strokes, noisy, not paper_is_dark if doubt else None)


def _only_noise(ordered: np.ndarray) -> bool:
    """Whether nothing stands MIN_CONTRAST past the noise floor (as ``paper.contrast``
    measures it on a photo: most pixels are paper) on either side of the median,
    nor MIN_CONTRAST past the median with a mass of pixels past the floor (a faint
    digit, large and blurred: its edges widen the spread the floor is measured by)."""
    median = levels.quantile(ordered, 0.5)
    reach = paper.noise_floor(median, levels.median_distance(ordered, median)) - median
    darker = int(np.searchsorted(ordered, median - reach))  # pixels past the floor
    lighter = ordered.size - int(np.searchsorted(ordered, median + reach, side="right"))
    for farthest, past in (
        (median - float(ordered[0]), darker),
        (float(ordered[-1]) - median, lighter),
    ):
        if farthest >= MIN_CONTRAST + reach:
            return False
        if farthest >= MIN_CONTRAST and past >= FAINT_MASS * ordered.size:
            return False
    return True


def ink_map(grey: np.ndarray) -> np.ndarray:
    """Ink strength in [0, 1] per pixel, bright on dark, background and specks at 0."""
    return digit_ink(ink_strength(grey))


def unit_clipped(values: np.ndarray) -> np.ndarray:
    """``np.clip(values, 0.0, 1.0)``, bit for bit, without its Python wrapper (a third of
    the cost on a 28×28 input)."""
    clipped = np.maximum(values, 0.0)
    return np.minimum(clipped, 1.0, out=clipped)


def fit_to_mnist(ink: np.ndarray, clean: bool = False) -> np.ndarray:
    """Crop to the ink, grow hairlines (``app.strokes``; blotted ones too if ``clean``),
    fit the longer side to 20 px, centre by mass in 28×28."""
    box = bounds(ink)
    if box is None:
        raise NoDigitError("No digit found: the image is blank or a single colour.")
    top, bottom, left, right = box
    crop = strokes.grown(ink[top:bottom, left:right], DIGIT_BOX, clean)
    height, width = crop.shape
    scale = DIGIT_BOX / max(height, width)
    if scale != 1.0:
        size = (max(1, round(width * scale)), max(1, round(height * scale)))
        crop = pillow_core.resized(crop, size, Image.Resampling.LANCZOS)
        crop = unit_clipped(crop)
    height, width = crop.shape
    row_masses, column_masses = crop.sum(axis=1), crop.sum(axis=0)
    total = float(row_masses.sum())
    if total <= 0.0:
        raise NoDigitError("No digit found: the image is blank or a single colour.")
    centre_row = float(row_masses @ POSITIONS[:height]) / total
    centre_column = float(column_masses @ POSITIONS[:width]) / total
    top = min(max(math.floor(CENTRE - centre_row + 0.5), 0), INPUT_SIZE - height)
    left = min(max(math.floor(CENTRE - centre_column + 0.5), 0), INPUT_SIZE - width)
    canvas = np.zeros((INPUT_SIZE, INPUT_SIZE), dtype=np.float32)
    canvas[top : top + height, left : left + width] = crop
    return canvas


def normalize_digit(image: Image.Image) -> np.ndarray:
    """An opened image -> the network's 28×28×1 float32 input in [0, 1]."""
    return input_and_ink(decode(image), is_photo(image))[0]


def is_photo(image: Image.Image) -> bool:
    """Whether an opened image is in a camera's format (``input_and_ink``'s ``photo``)."""
    return image.format in PHOTO_FORMATS


def input_and_ink(image: Image.Image, photo: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """What ``decode`` gave -> the network's input, and the ink map it was cut from
    (``ink_map``: kept for a refusal to look at, rather than found again); ``image``
    is left as it was. ``photo``: it came in a camera's format (``is_photo``)."""
    return readings(image, photo, both_ways=False)[0]


def readings(
    image: Image.Image, photo: bool = False, both_ways: bool = True
) -> list[tuple[np.ndarray, np.ndarray]]:
    """``input_and_ink``'s reading, then, if ``both_ways`` and a clean image that is no
    photo leaves its paper's side in doubt (a digit stretched to fill its frame, ink on
    about half its border and corners), its reading the other way round if that finds
    ink: the caller keeps the one more like a digit (docs/preprocessing.md)."""
    if photo and max(image.size) > GLANCE_SIZE and (glanced := _glanced(image)) is not None:
        return [_as_input(glanced, clean=False)]
    grey = page_levels(image)
    strength = ink_strength(grey)
    clean = not (strength.noisy or photo)  # other_side is None on a noisy image
    found = [_as_input(digit_ink(strength), clean)]
    if both_ways and clean and strength.other_side is not None:
        with contextlib.suppress(NoDigitError):  # no ink that way round: the first stands
            found.append(_as_input(digit_ink(ink_strength(grey, strength.other_side)), clean))
    return found


def _as_input(ink: np.ndarray, clean: bool) -> tuple[np.ndarray, np.ndarray]:
    return fit_to_mnist(ink, clean)[..., np.newaxis], ink


def _glanced(image: Image.Image) -> np.ndarray | None:
    """The ink map of a photo read at GLANCE_SIZE, when its digit spans at least
    GLANCE_MIN_DIGIT px there and no faint ink runs past its strokes' halo; else None,
    and it is read at full size.

    The second test catches paper whose noise the reduction averaged under a grey
    level: read as clean, its faint unevenness would all be ink, to the frame's edges
    (grey scans glanced at showed it; dithered 1-bit scans misread even with the test,
    which is why only photos are glanced at: docs/performance.md)."""
    small = glance(image)
    grey = grey_levels(small)
    page = page_levels_of(grey, min(image.size), _colour(image))
    # Pillow counts faster, but only what the image shows, not the page alone.
    counts = small.histogram() if small.mode == "L" and page is grey else None
    grey = page
    edges = 2 * halo(grey.shape)  # the strokes' anti-aliased edge on both sides
    if levels.rough_extent(grey, counts) < GLANCE_MIN_DIGIT - edges:
        return None  # a smaller digit: read at full size at once
    try:
        ink = ink_map(grey)  # the same shape as grey
    except NoDigitError:
        return None  # the full size decides, and says so
    if GLANCE_MIN_DIGIT <= _ink_side(ink) <= _ink_side(ink > FAINT_INK) + edges:
        return ink
    return None


def glance(image: Image.Image) -> Image.Image:
    """A copy of a decoded photo reduced to GLANCE_SIZE: what its first reading reads
    (a JPEG's grey alone: its colour is looked at, if at all, at full size)."""
    return _reduced(image.getchannel(0) if image.mode == "YCbCr" else image.copy(), GLANCE_SIZE)


def _ink_side(ink: np.ndarray) -> int:
    """The longer side of the box holding every pixel of ``ink`` (0 if none)."""
    box = bounds(ink)
    return 0 if box is None else max(box[1] - box[0], box[3] - box[2])


def preprocess(data: bytes, limits: Limits = Limits()) -> np.ndarray:
    """Upload bytes -> the network's 28×28×1 float32 input in [0, 1] (the first of
    ``readings``: the service may keep the other where the paper is in doubt)."""
    return normalize_digit(open_image(data, limits))
