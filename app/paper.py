"""Where the paper is: which of Otsu's two classes is paper, its shades, a shadow
across it relit (``out_of_shade``), and, for a photo, whether its light varies and its
level per pixel (``app.preprocessing``'s steps 3 and 4); each pixel's ink against it
and the paper's noise floor. A page apart from the desk it lies on: ``app.desk``. No
web framework in here.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from PIL import Image
from scipy import ndimage

from app import levels, pillow_core
from app.ink_blobs import pen_width

BORDER_MAJORITY = 0.75  # the border shows the paper when this share of it is one class
CORNER = 0.1  # where ink touches the border, corner squares of this share of the side say too
# A line all round the image this thin (a share of the shorter side, 3 px at least) is a
# frame (a form's box cut at its edge), not the paper: the ring inside it says instead.
FRAME = 0.04
FRAME_MIN_SIDE = 32  # no frame on a smaller image: a box-normalised digit's strokes lie there
EVEN_PAPER_SPREAD = 8.0  # the light varies when the paper's level differs this much by side
CLEAN_PAPER_SPREAD = 3.0  # ... and its clean quartile by this much
FLATTEN_MIN_SIDE = 56  # images at least this big get a per-pixel background
BACKGROUND_SIDE = 64  # a varying paper is estimated at this size
STROKE_BACKDROP = 0.5  # the per-pixel paper this far from Otsu's threshold to the ink is ink
SHADOW_INK = 96.0  # ink this far past Otsu's threshold is a pen's, not a shadow's or a scene's
SMOOTH_LIGHT_SPAN = 64.0  # an image spanning fewer grey levels may be blank paper in uneven light
FAINT_SPAN = 128.0  # one spanning fewer is evened too when its paper about the light's ...
FAINT_NOISE = 6.0  # ... surface spreads less than this: a faint pencil, not a crop of ink
# A photo's noise is measured on all its pixels when Otsu's paper class is at least this
# share of them (most photos: the median 0.98), else on that class alone: an old
# register's heavy digit cropped close, its strokes faded to every level, raised the
# floor past most of them (docs/preprocessing.md).
MOSTLY_PAPER = 0.9


def corners_dark(grey: np.ndarray, threshold: float) -> float:
    """The share of the four corner squares (CORNER of the shorter side) at or under
    ``threshold``."""
    side = max(1, round(CORNER * min(grey.shape)))
    corners = np.concatenate(
        [grey[:side, :side], grey[:side, -side:], grey[-side:, :side], grey[-side:, -side:]]
    )
    return float(np.count_nonzero(corners <= threshold)) / corners.size


def ring(grey: np.ndarray, depth: int) -> np.ndarray:
    """The pixels ``depth`` pixels in from the image's sides (0: its border)."""
    inner = grey[depth : grey.shape[0] - depth, depth : grey.shape[1] - depth]
    return np.concatenate([inner[0], inner[-1], inner[1:-1, 0], inner[1:-1, -1]])


def frame_depth(shape: tuple[int, ...]) -> int:
    """How thick a line all round the image may be to be a frame (FRAME); 0 on an
    image under FRAME_MIN_SIDE a side."""
    if min(shape) < FRAME_MIN_SIDE:
        return 0
    return max(3, round(FRAME * min(shape)))


def inside_frame(grey: np.ndarray, threshold: float, border_dark: bool) -> np.ndarray | None:
    """The ring just inside a frame, when the image's border (mostly dark if
    ``border_dark``) is one: a ring at most ``frame_depth`` in shows mostly the other
    class of Otsu's two. (A heavy digit within a thin margin of paper may too: then
    the corners, paper, have their say as ever.)"""
    for depth in range(1, frame_depth(grey.shape) + 1):
        inside = ring(grey, depth)
        other = np.count_nonzero((inside <= threshold) != border_dark) / inside.size
        if other >= BORDER_MAJORITY:
            return inside
    return None


def pen_ink(ink: float, threshold: float) -> bool:
    """Whether ink at level ``ink`` lies SHADOW_INK or more past Otsu's threshold:
    a pen's, which no shadow or scene reaches."""
    return abs(ink - threshold) >= SHADOW_INK


class Paper(NamedTuple):
    dark: bool  # the paper is the darker of Otsu's two classes
    shades: np.ndarray  # its grey levels, sorted
    threshold: float  # Otsu's, between paper and ink
    sure: bool  # the border or the corners said which class is paper, not its size alone
    share: float  # its class's share of the pixels


def side(
    ascending: np.ndarray,
    border: np.ndarray,
    grey: np.ndarray,
    paper_dark: bool | None = None,
) -> Paper:
    """Which side is the paper, its grey shades, and the threshold between paper and
    ink; ``paper_dark``: the side the caller takes for the paper (reading an image
    the other way round, where it was not ``sure``), else found here.

    Otsu splits the pixels into a dark and a light class. The paper is the class
    the border shows, when most of the border shows one; but a border of the
    image's lesser class may be a thin frame (a form's box cut at its edge): when a
    ring just inside it shows the other class, that ring stands for the border
    (``inside_frame``). Where ink touches the border, the corners have a say: a
    digit that fills its frame (box-normalised, heavy strokes) can cover most of
    the border, but rarely the corners, so when most of the corners show the other
    class, that is the paper. With neither deciding, the paper is the class that
    covers more of the image (ink rarely covers half of it, but a digit stretched to
    fill its frame may: ``preprocessing.readings`` then reads it both ways round).
    Of the paper's class, the shades nearer the paper's own than the threshold are
    the paper: the rest are the strokes' anti-aliased edges.
    """
    threshold = levels.otsu(ascending)
    dark = border <= threshold
    border_dark = float(np.count_nonzero(dark)) / border.size
    split = int(np.searchsorted(ascending, threshold, side="right"))  # the dark class's size
    # A border of the image's lesser class all round it may be a frame around the paper.
    if (border_dark >= BORDER_MAJORITY and 2 * split < ascending.size) or (
        border_dark <= 1.0 - BORDER_MAJORITY and 2 * split > ascending.size
    ):
        inside = inside_frame(grey, threshold, border_dark >= BORDER_MAJORITY)
        if inside is not None:
            border = inside
            dark = border <= threshold
            border_dark = float(np.count_nonzero(dark)) / border.size
    by_border = border_dark >= BORDER_MAJORITY or border_dark <= 1.0 - BORDER_MAJORITY
    paper_is_dark = border_dark >= BORDER_MAJORITY if by_border else None
    if 0.0 < border_dark < 1.0:  # ink touches the border
        corners = corners_dark(grey, threshold)
        corners_paper_dark = corners >= BORDER_MAJORITY
        decided = corners_paper_dark or corners <= 1.0 - BORDER_MAJORITY
        if decided and paper_is_dark != corners_paper_dark:
            by_border, paper_is_dark = False, corners_paper_dark
    sure = paper_is_dark is not None
    if paper_dark is not None and paper_dark != paper_is_dark:
        by_border, paper_is_dark = False, paper_dark
    if by_border:
        shades = np.sort(border[dark == paper_is_dark])
    else:
        if paper_is_dark is None:
            paper_is_dark = split >= ascending.size - split
        shades = ascending[:split] if paper_is_dark else ascending[split:]
    if shades.size == 0:  # every border level on the threshold itself
        shades = ascending
    extreme = levels.quantile(shades, 0.02 if paper_is_dark else 0.98)
    middle = (extreme + threshold) / 2.0
    if paper_is_dark:
        kept = shades[: int(np.searchsorted(shades, middle, side="right"))]
    else:
        kept = shades[int(np.searchsorted(shades, middle, side="left")) :]
    share = (split if paper_is_dark else ascending.size - split) / ascending.size
    return Paper(paper_is_dark, kept if kept.size else shades, threshold, sure, share)


def uneven(grey: np.ndarray, paper_is_dark: bool, threshold: float, ink: float) -> bool:
    """Whether the light on the paper varies: the paper's level differs between the
    image's four sides (a lamp to one side, a shadow) by more than EVEN_PAPER_SPREAD.

    Each side's level is the median of its paper, and also its clean quartile (the
    quarter of its paper farthest from the ink): light that varies moves both, but
    the anti-aliased edge of a thick digit touching a side (a 16 px scan enlarged)
    moves only the median, and flattening would then eat the strokes.

    A lamp at one corner can darken the far sides' paper past Otsu's threshold,
    which then splits the light rather than ink from paper: such a side has little
    paper by the threshold. Where the ink (its level ``ink``) lies far past the
    threshold (SHADOW_INK: a pen photographed, not a scene), such a side's level is
    its clean tenth, when that lies nearer the threshold than the ink."""
    medians, quartiles = [], []
    for edge in (grey[0], grey[-1], grey[:, 0], grey[:, -1]):
        paper = np.sort(edge[(edge <= threshold) == paper_is_dark])
        if paper.size >= edge.size // 4:
            medians.append(levels.quantile(paper, 0.5))
            quartiles.append(levels.quantile(paper, 0.25 if paper_is_dark else 0.75))
        elif pen_ink(ink, threshold):
            clean = levels.quantile(np.sort(edge), 0.1 if paper_is_dark else 0.9)
            if abs(clean - threshold) < abs(clean - ink):
                medians.append(clean)
                quartiles.append(clean)
    return (
        len(medians) >= 2
        and max(medians) - min(medians) > EVEN_PAPER_SPREAD
        and max(quartiles) - min(quartiles) > CLEAN_PAPER_SPREAD
    )


def took_in_strokes(
    backdrop: np.ndarray, paper_is_dark: bool, threshold: float, ink: float
) -> bool:
    """Whether the per-pixel paper (``background``) reaches past Otsu's threshold
    more than STROKE_BACKDROP of the way to the ink's level ``ink``: it has taken in
    strokes wider than its window (a 16 px bitmap's 1 enlarged, a solid bar), not
    light that varies (photos of paper: at most 0.17)."""
    towards_ink = 1.0 if paper_is_dark else -1.0  # light ink lies above the threshold
    extreme = float(backdrop.max() if paper_is_dark else backdrop.min())
    reach = (ink - threshold) * towards_ink
    return reach > 0.0 and (extreme - threshold) * towards_ink > STROKE_BACKDROP * reach


def may_even(span: float, shape: tuple[int, ...]) -> bool:
    """Whether ``preprocessing.ink_strength`` may even the light (``evened``) of an
    image of ``shape`` whose levels span ``span`` grey levels: a faint photo."""
    return span < FAINT_SPAN and min(shape) >= FLATTEN_MIN_SIDE


# A shadow across the page (a phone or a hand over it): Otsu splits the lit paper from
# the shaded, the ink lumped with the shade, and the page is read inside out or the
# shadow's edge as a stroke. The light over the page is what a closing of SHADE_WINDOW
# leaves of the image reduced to BACKGROUND_SIDE: strokes narrower go, a shadow's edge
# stays. A shadow (``_a_shadow``) keeps SHADE_FLOOR to SHADE of the light on paper
# SHADE_PAPER bright or more (dark ink on paper: not a dark screen, nor ink wider than
# the window), over SHADE_AREA of the image and of its border or more (cast from off the
# frame), a region SHADE_THICK windows thick or more (its area over its edge's length),
# not the strokes of a heavy digit the closing left.
SHADE = 0.75
SHADE_FLOOR = 0.4
SHADE_PAPER = 128.0
SHADE_AREA = 0.1
SHADE_THICK = 0.75
SHADE_WINDOW = 13


def out_of_shade(grey: np.ndarray) -> np.ndarray:
    """``grey``, or a copy relit where a shadow falls on the page: each pixel divided by
    the light over it, and brought up to the lit paper's level."""
    if min(grey.shape) < FLATTEN_MIN_SIDE:
        return grey
    sample = grey[::4, ::4]  # a tenth of the image at SHADE of its brightest or darker?
    tenth = np.partition(sample, sample.size // 10, axis=None)[sample.size // 10]
    if tenth > SHADE * sample.max():
        return grey  # most images: no more work
    small = _reduced(grey)
    light = ndimage.grey_closing(small, size=SHADE_WINDOW, mode="nearest")
    lit = float(np.quantile(light, 0.98))
    if not _a_shadow(small, light, lit):
        return grey
    over = _light_over(grey, light)
    return np.minimum(grey * (lit / np.maximum(over, 1.0)), 255.0).astype(np.float32)


def _a_shadow(small: np.ndarray, light: np.ndarray, lit: float) -> bool:
    """Whether the ``light`` over the image reduced (``small``), its lit paper at
    ``lit``, shows a shadow: as the constants above say, its shade under Otsu's
    threshold too (a lighter one is the per-pixel paper's, ``background``)."""
    darkest, shaded = np.quantile(light, (0.02, SHADE_AREA))
    if lit < SHADE_PAPER or darkest < SHADE_FLOOR * lit or shaded > SHADE * lit:
        return False
    if shaded > levels.otsu(np.sort(small, axis=None)):
        return False
    shade = light <= SHADE * lit
    if np.count_nonzero(edge := ring(shade, 0)) < SHADE_AREA * edge.size:
        return False
    return pen_width(shade) >= 2 * SHADE_THICK * SHADE_WINDOW  # twice area over edge


def _light_over(grey: np.ndarray, light: np.ndarray) -> np.ndarray:
    """The light over each pixel of ``grey``: of ``light`` (reduced) at the pixel's cell
    and the eight around it, the level nearest the pixel's own, so that a shadow's edge
    stays as sharp as the image has it (interpolating would blur it into a stroke)."""
    height, width = grey.shape
    padded = np.pad(light, 1, mode="edge")
    rows = np.minimum((np.arange(height) * light.shape[0]) // height, light.shape[0] - 1)
    columns = np.minimum((np.arange(width) * light.shape[1]) // width, light.shape[1] - 1)
    best = np.full(grey.shape, np.inf, dtype=np.float32)
    over = np.empty(grey.shape, dtype=np.float32)
    for dy in range(3):
        for dx in range(3):
            candidate = padded[rows + dy][:, columns + dx]
            distance = np.abs(candidate - grey)
            nearer = distance < best
            best[nearer], over[nearer] = distance[nearer], candidate[nearer]
    return over


def _reduced(grey: np.ndarray) -> np.ndarray:
    """The image reduced (box filter) so that its longer side is BACKGROUND_SIDE."""
    height, width = grey.shape
    scale = BACKGROUND_SIDE / max(height, width)
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    return pillow_core.resized(grey, size, Image.Resampling.BOX)


def evened(grey: np.ndarray, noisiest: float = np.inf) -> np.ndarray | None:
    """The image with light that varies smoothly over it taken away: less a
    quadratic surface fitted to its paper (least squares on the image reduced to
    BACKGROUND_SIDE, refitted without the pixels far from the first fit: the
    strokes), plus the surface's median level. None when the pixels it fits spread
    more than ``noisiest`` grey levels (a standard deviation) about it: then it is
    not paper with a few strokes."""
    height, width = grey.shape
    small = _reduced(grey)
    size = small.shape[1], small.shape[0]

    def terms(rows: np.ndarray, columns: np.ndarray) -> list[np.ndarray]:
        return [np.ones_like(rows), rows, columns, rows * rows, rows * columns, columns * columns]

    rows, columns = np.mgrid[0 : size[1], 0 : size[0]].astype(np.float32)
    fit = np.stack([t.ravel() for t in terms(rows / size[1], columns / size[0])], axis=1)
    values, kept = small.ravel(), np.ones(small.size, dtype=bool)
    for _ in range(2):
        weights = np.linalg.lstsq(fit[kept], values[kept], rcond=None)[0]
        residual = values - fit @ weights
        deviation = np.median(np.abs(residual - np.median(residual)))
        kept = np.abs(residual) <= 3.0 * levels.MAD_TO_SIGMA * deviation + 1.0
    if levels.MAD_TO_SIGMA * deviation > noisiest:
        return None
    rows = ((np.arange(height, dtype=np.float32) + 0.5) / height - 0.5 / size[1])[:, None]
    columns = ((np.arange(width, dtype=np.float32) + 0.5) / width - 0.5 / size[0])[None, :]
    surface = sum(np.float32(w) * t for w, t in zip(weights, terms(rows, columns), strict=True))
    return np.clip(grey - surface + np.float32(np.median(fit @ weights)), 0.0, 255.0)


def background(grey: np.ndarray, dark_ink: bool) -> np.ndarray:
    """A smooth per-pixel estimate of the paper (or screen) without the strokes."""
    height, width = grey.shape
    small = _reduced(grey)
    # A closing (an opening for light ink) erases strokes narrower than the
    # window, up to a fifth of the image, and keeps the slow variation of the light.
    morphology = ndimage.grey_closing if dark_ink else ndimage.grey_opening
    small = morphology(small, size=(13, 13), mode="nearest")
    small = ndimage.uniform_filter(small, size=7, mode="nearest")
    return pillow_core.resized(small, (width, height), Image.Resampling.BILINEAR)


def contrast(
    grey: np.ndarray,
    ordered: np.ndarray,
    background: float,
    found: Paper,
    backdrop: np.ndarray | None,
) -> tuple[np.ndarray, np.ndarray, float]:
    """Each pixel's ink against the paper (``found`` by ``side`` at level ``background``,
    or per pixel: ``backdrop``), the same sorted, and the noise floor under which it is
    paper."""
    dark_ink = not found.dark
    if backdrop is not None:
        ink = ink_contrast(grey, backdrop, dark_ink)
        ordered_ink = levels.ascending_fine(ink)
        # The noise is what most of a photo shows, its paper; where the ink covers
        # much of it (a heavy digit cropped close), Otsu's paper class alone.
        noise = ordered_ink
        if found.share < MOSTLY_PAPER:
            on_paper = (grey <= found.threshold) == found.dark
            noise = levels.ascending_fine(ink[on_paper])
        median = levels.quantile(noise, 0.5)
        deviation = levels.median_distance(noise, median)
        return ink, ordered_ink, noise_floor(median, deviation)
    ink = ink_contrast(grey, background, dark_ink)
    ordered = ink_contrast(ordered[::-1] if dark_ink else ordered, background, dark_ink)
    # Measured on the paper alone (a marker digit cropped tight is mostly ink), in grey
    # levels either side of its median, in the ink's units.
    deviation = levels.median_distance(found.shades, background)
    if dark_ink:
        deviation *= 255.0 / max(background, 1.0)
    # Noise floor from the background's own spread: 0 for clean images like MNIST.
    return ink, ordered, noise_floor(0.0, deviation)


def noise_floor(median: float, deviation: float) -> float:
    """Four standard deviations of the paper's noise past its median level."""
    return median + 4.0 * levels.MAD_TO_SIGMA * deviation


def ink_contrast(grey: np.ndarray, paper, dark_ink: bool) -> np.ndarray:
    """How much ink each pixel shows, 0..255, against the paper's brightness.

    Dark ink is measured as lost reflectance, 1 - grey/paper: light falling
    unevenly on the page scales ink and paper alike, and this divides it out.
    Light ink (screens, chalk) adds light, so it is measured as a difference.
    """
    if dark_ink:
        ink = (paper - grey) * (255.0 / np.maximum(paper, 1.0))
    else:
        ink = grey - paper
    # np.maximum, not np.clip: the same values at half the cost on a small image.
    return np.maximum(ink, 0.0).astype(np.float32, copy=False)
