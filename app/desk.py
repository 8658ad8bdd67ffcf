"""Where a photographed page lies on the desk (a table, a floor) around it: what lies off
the page is no ink, so it is painted as the page (``on_the_page``, ``app.preprocessing``'s
first step). The page is told from the desk by its grey levels, or, where a shadow
hides that step, by its colour. No web framework in here.
"""

from __future__ import annotations

import numpy as np
from PIL import Image
from scipy import ndimage

from app.ink_blobs import bounds, dilated
from app.paper import ring

# A photo of a page lying on a darker surface (a desk, a table): the surface is no ink.
# The page is the image's largest bright blob, its marks' holes filled in, when it covers
# PAGE_SHARE of the image or more, PAGE_FILL of its box (a sheet, turned a little), is
# blank but for at most PAGE_INK of it and some marks, and leaves PAGE_OUTSIDE of the
# image's border or more to the surface, PAGE_CONTRAST grey levels darker than it.
PAGE_SHARE = 0.2
PAGE_FILL = 0.75
PAGE_INK = 0.2
PAGE_OUTSIDE = 0.5
PAGE_CONTRAST = 40.0
PAGE_MIN_SIDE = 64  # smaller images are crops of a digit, not photos of a page
# A page running off the frame leaves the surface less of the border: PAGE_SIDE of it is
# enough. Either way the surface must look unlike ink and unlike shade (``_a_desk``).
PAGE_SIDE = 0.1
DESK_OVER_INK = 8.0
DESK_INK = 0.001
EDGE_WIDTH = 0.5


def on_the_page(
    grey: np.ndarray, side: int | None = None, colour: Image.Image | None = None
) -> np.ndarray:
    """``grey``, or a copy with the surface around a photographed page, and the page's
    own edge, painted as the page: what lies off the page is not its ink. ``side``: the
    shorter side of the image ``grey`` was reduced from, if it was; ``colour``: the
    image ``grey`` is of, at any size, where it is in colour (RGB, or YCbCr as a JPEG
    decodes)."""
    if (side or min(grey.shape)) < PAGE_MIN_SIDE:
        return grey
    painted = _by_level(grey)
    if painted is grey and colour is not None and _dark_border(grey):
        return _by_colour(grey, colour)
    return painted


def _by_level(grey: np.ndarray) -> np.ndarray:
    """``on_the_page`` where the grey levels tell the page from the desk, darker."""
    border = ring(grey, 0)
    surface = float(np.median(border))
    sample = grey[::4, ::4]
    if float(sample.max()) - surface >= PAGE_CONTRAST:  # a page brighter than the border?
        bright = float(np.quantile(sample, 0.9))
        if bright - surface >= PAGE_CONTRAST:  # the border mostly the surface around it
            return _painted(grey, bright, surface, PAGE_OUTSIDE)
    # The border mostly the page (most images: no more work), or dark paper; the page
    # may still run off the frame with the surface along a side or two.
    desk = border[border < surface - PAGE_CONTRAST]
    if desk.size < PAGE_SIDE * border.size:
        return grey
    return _painted(grey, surface, float(np.median(desk)), PAGE_SIDE)


def _painted(grey: np.ndarray, bright: float, surface: float, outside_share: float):
    """``grey`` with what lies off the page painted as the page, when the blank of level
    ``bright`` found against a ``surface`` is a page leaving ``outside_share`` of the
    border to it; else ``grey`` itself."""
    blank = _largest(grey > (bright + surface) / 2)
    if blank is None:
        return grey
    outside = _off_page(blank)
    area, blank_area = np.count_nonzero(~outside), np.count_nonzero(blank)
    if not (_page_shaped(outside, outside_share) and (1 - PAGE_INK) * area <= blank_area < area):
        return grey
    reach = _reach(grey.shape)
    off = dilated(outside, reach)
    if not _a_desk(grey, outside, blank, bright, off, reach):
        return grey
    # Each pixel off the page, or on its own edge (shaded, blurred), takes the level of
    # the nearest blank pixel of the page: its light continued, no edge left to see.
    return _paint(grey, off, blank & ~off)


def _largest(mask: np.ndarray) -> np.ndarray | None:
    """The largest region of ``mask``'s pixels (4-connected); None if it has none."""
    labels, count = ndimage.label(mask)
    if count == 0:
        return None
    return labels == int(np.argmax(np.bincount(labels.ravel())[1:])) + 1


def _off_page(page: np.ndarray) -> np.ndarray:
    """What lies off a page made of ``page``'s pixels and its holes (what lies off it
    but is not connected to the image's border: its marks)."""
    return _on_border(~page)


def _on_border(mask: np.ndarray) -> np.ndarray:
    """The regions of ``mask``'s pixels (4-connected) that reach the image's border."""
    labels, _ = ndimage.label(mask)
    touching = np.unique(ring(labels, 0))
    return np.isin(labels, touching[touching > 0])


def _page_shaped(outside: np.ndarray, outside_share: float) -> bool:
    """Whether the page that ``outside`` leaves covers PAGE_SHARE of the image and
    PAGE_FILL of its box, and leaves ``outside_share`` of the border to the surface."""
    page = ~outside
    area = np.count_nonzero(page)
    box = bounds(page)
    if box is None:
        return False
    top, bottom, left, right = box
    return (
        area >= PAGE_SHARE * page.size
        and area >= PAGE_FILL * (bottom - top) * (right - left)
        and np.count_nonzero(edge := ring(outside, 0)) >= outside_share * edge.size
    )


def _reach(shape: tuple[int, ...]) -> int:
    """How far past a page the page's own edge lies (blurred, shaded), in pixels."""
    return max(3, round(max(shape) / 50))


def _rim(outside: np.ndarray) -> int:
    """The length of the page's edge: the pixels ``outside`` it beside it."""
    return np.count_nonzero(outside & dilated(~outside, 1))


def _paint(grey: np.ndarray, off: np.ndarray, source: np.ndarray) -> np.ndarray:
    """A copy of ``grey`` with each pixel of ``off`` at the level of the nearest pixel
    of ``source``."""
    nearest = ndimage.distance_transform_edt(~source, return_distances=False, return_indices=True)
    painted = grey.copy()
    painted[off] = grey[nearest[0][off], nearest[1][off]]
    return painted


def _a_desk(
    grey: np.ndarray,
    outside: np.ndarray,
    blank: np.ndarray,
    bright: float,
    off: np.ndarray,
    reach: int,
) -> bool:
    """Whether what lies ``outside`` a page (its blank ``blank``, of level ``bright``)
    is a surface seen past the page's edge, not ink or shade on the page: as thick as
    the band ``off`` painted past its edge (``reach``) or more; its level
    (away from the edge, ``reach`` px wide: blurred, ringing in a JPEG) lies
    DESK_OVER_INK or more above the darkest of the page's marks; at most DESK_INK of it
    lies as dark as halfway to them in blocks of 2×2 pixels (a stroke, not a speck of
    the desk's grain); and the levels between its and the page's span at most
    EDGE_WIDTH of the band ``off`` (a page's edge is a step, light falling off a slope).
    """
    page = ~outside
    rim = _rim(outside)
    if np.count_nonzero(outside) < reach * rim:
        return False  # thinner than the band painted past its edge: strokes cut by the frame
    away = outside & ~dilated(page, reach)
    if not away.any():
        away = outside
    level, ink = float(np.median(grey[away])), float(np.quantile(grey[page & ~blank], 0.05))
    if level - ink < DESK_OVER_INK:
        return False
    dark = away & (grey < (level + ink) / 2)
    strokes = dark[:-1, :-1] & dark[1:, :-1] & dark[:-1, 1:] & dark[1:, 1:]
    if np.count_nonzero(strokes) > DESK_INK * np.count_nonzero(away):
        return False
    quarter = (bright - level) / 4
    between = np.count_nonzero(off & (grey > level + quarter) & (grey < bright - quarter))
    return between <= EDGE_WIDTH * reach * rim


# A shadow across the page and the desk alike takes the step at the page's edge (the
# desk's lit part as light as the page's shaded part), but not their colours: it takes
# as much of the red, the green and the blue. A pixel's colour here is its shares of red
# and of green in r + g + b. Where PAGE_SIDE of the border lies PAGE_CONTRAST under the
# image's brightest fifth (PAGE_BRIGHT), the page's colour is the median of that fifth,
# on the image reduced to COLOUR_SIDE or so, and the desk what lies APART or more from
# it (the two shares' differences added) connected to the border, PAGE_SIDE of it or
# more, as thick as the band painted past the page's edge (strokes cut by the frame are
# not), and along that edge at most DESK_DARKER of the page's level (a shadow dims both
# sides of the edge alike; a coloured sheet on a white desk is the page); the page, the
# rest's largest region, its holes filled, shaped as above.
APART = 0.05
PAGE_BRIGHT = 0.8
DESK_DARKER = 0.8
COLOUR_SIDE = 64


def _dark_border(grey: np.ndarray) -> bool:
    """Whether PAGE_SIDE of the border or more lies PAGE_CONTRAST under the image's
    brightest fifth (PAGE_BRIGHT): a desk may lie there, or a shadow (most photos: no)."""
    border = ring(grey, 0)
    bright = float(np.quantile(grey[::4, ::4], PAGE_BRIGHT))
    return np.count_nonzero(border < bright - PAGE_CONTRAST) >= PAGE_SIDE * border.size


def _by_colour(grey: np.ndarray, colour: Image.Image) -> np.ndarray:
    """``on_the_page`` where the page is told from the desk by its colour: its colour
    and the border's looked at on the image reduced (most photos: no more work), the
    desk found at full size."""
    factor = max(1, max(colour.size) // COLOUR_SIDE)
    small = _rgb(colour.reduce(factor) if factor > 1 else colour)
    level = small.sum(axis=-1)
    paper = np.median(_shares(small[level >= np.quantile(level, PAGE_BRIGHT)]), axis=0)
    if np.count_nonzero(edge := _apart(ring(small, 0), paper)) < PAGE_SIDE * edge.size:
        return grey
    size = grey.shape[1], grey.shape[0]
    if colour.size != size:  # a photo's glance
        colour = colour.resize(size, Image.Resampling.BOX)
    apart = _apart(_rgb(colour), paper)
    page = _largest(~_on_border(apart))
    if page is None:
        return grey
    outside = _off_page(page)
    if not _page_shaped(outside, PAGE_SIDE):
        return grey
    reach = _reach(grey.shape)
    if np.count_nonzero(outside) < reach * _rim(outside):
        return grey
    off = dilated(outside, reach)
    inside = dilated(~outside, reach) & outside  # the desk along the page's edge ...
    if np.median(grey[inside]) > DESK_DARKER * np.median(grey[off & ~outside]):  # ... the page
        return grey
    return _paint(grey, off, ~off & ~apart)


def _rgb(image: Image.Image) -> np.ndarray:
    """The image's RGB levels, float32."""
    return np.asarray(image if image.mode == "RGB" else image.convert("RGB"), dtype=np.float32)


def _shares(rgb: np.ndarray) -> np.ndarray:
    """Each pixel's shares of red and of green in its r + g + b: its colour, whatever its light."""
    return rgb[..., :2] / (rgb.sum(axis=-1, keepdims=True) + 1.0)


def _apart(rgb: np.ndarray, paper: np.ndarray) -> np.ndarray:
    """Which pixels of ``rgb`` lie APART or more from the page's colour ``paper``."""
    return np.abs(_shares(rgb) - paper).sum(axis=-1) >= APART
