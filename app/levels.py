"""Statistics of grey levels from sorted values: quantiles, the median distance
and Otsu's threshold. One sort of the image serves them all. And a rough size of
what an image shows, from its histogram (``rough_extent``)."""

from __future__ import annotations

import bisect
from collections.abc import Sequence

import numpy as np

OTSU_SAMPLE = 4096  # Otsu looks at this many of the sorted values, evenly spaced
MAD_TO_SIGMA = 1.4826  # a normal spread's standard deviation per median distance
WHOLE_LEVELS = np.arange(256, dtype=np.float32)  # every level of an 8-bit image
FINE = 1.0 / 256.0  # the step of a photo's ink statistics, in grey levels
FINE_LEVELS = np.arange(256 * 256, dtype=np.float32) * np.float32(FINE)


def ascending(values: np.ndarray) -> np.ndarray:
    """``np.sort(values, axis=None)``'s values: counted rather than compared where
    every value is a whole grey level 0-255 (an 8-bit image, the most uploads):
    145 against 1,268 µs for a 300 px photo, 120 against 341 for a 600×150 scan."""
    with np.errstate(invalid="ignore"):  # NaN or out of range: not equal, sorted
        levels = values.astype(np.uint8)
    if values.dtype == np.float32 and np.array_equal(levels, values):
        counts = np.bincount(levels.ravel(), minlength=256)
        return np.repeat(WHOLE_LEVELS, counts)
    return np.sort(values, axis=None)


def ascending_fine(values: np.ndarray) -> np.ndarray:
    """Non-negative values under 256 in ascending order, each cut down to a 1/256th
    of a level (FINE): counted, 242 against ``np.sort``'s 1,526 µs for a 300 px
    photo's ink, whose every value differs. Its statistics move by under FINE."""
    keys = (values * (1.0 / FINE)).astype(np.uint16)
    counts = np.bincount(keys.ravel(), minlength=FINE_LEVELS.size)
    return np.repeat(FINE_LEVELS, counts)


def quantile(ascending: np.ndarray, fraction: float) -> float:
    """Quantile of already sorted values: one sort serves every quantile we need."""
    position = fraction * (ascending.size - 1)
    below = int(position)
    above = min(below + 1, ascending.size - 1)
    weight = position - below
    return float(ascending[below] * (1.0 - weight) + ascending[above] * weight)


def median_distance(ascending: np.ndarray, centre: float) -> float:
    """``np.median(np.abs(ascending - centre))`` for sorted float32 values, bit for
    bit, without the partition: the distances below the centre and those above it
    are two sorted runs, and the median of two sorted runs is a binary search."""
    centre32 = np.float32(centre)
    split = int(np.searchsorted(ascending, centre32))
    below = centre32 - ascending[:split][::-1]  # ascending distances
    above = ascending[split:] - centre32
    middle = ascending.size // 2
    if ascending.size % 2:
        return float(kth_of_two(below, above, middle))
    low, high = kth_of_two(below, above, middle - 1), kth_of_two(below, above, middle)
    return float((low + high) / np.float32(2))  # as np.median averages, in float32


def kth_of_two(first: np.ndarray, second: np.ndarray, k: int) -> np.float32:
    """The k-th smallest (from 0) of two ascending arrays together."""
    # Take i from ``first`` and k + 1 - i from ``second``: the least i whose next
    # value in ``first`` is no smaller than the last one taken from ``second``.
    low, high = max(0, k + 1 - second.size), min(first.size, k + 1)
    while low < high:
        i = (low + high) // 2
        if first[i] < second[k - i]:
            low = i + 1
        else:
            high = i
    taken = k + 1 - low
    if low == 0:
        return second[taken - 1]
    if taken == 0:
        return first[low - 1]
    return max(first[low - 1], second[taken - 1])


def otsu(ascending: np.ndarray) -> float:
    """Otsu's threshold between background and ink, from the sorted values.

    Over OTSU_SAMPLE values, every k-th one stands for the rest: the same
    distribution to within 1/OTSU_SAMPLE, at a fraction of the cost on a photo.
    """
    if ascending.size > OTSU_SAMPLE:
        ascending = ascending[:: ascending.size // OTSU_SAMPLE]
    count = ascending.size
    if count < 2:
        return float(ascending[0]) if count else 0.0
    cumulative = np.cumsum(ascending, dtype=np.float64)
    below = np.arange(1, count, dtype=np.float64)
    mean_below = cumulative[:-1] / below
    mean_above = (cumulative[-1] - cumulative[:-1]) / (count - below)
    between = below * (count - below) * (mean_below - mean_above) ** 2
    # Only split between different values: a threshold inside a run of equal
    # values would put equal pixels on both sides.
    between[ascending[1:] == ascending[:-1]] = -1.0
    return float(ascending[int(np.argmax(between))])


def otsu_of_counts(ascending: np.ndarray, counts: np.ndarray) -> float:
    """``otsu(np.repeat(ascending, counts))`` from a histogram: ``ascending`` the
    levels (float32; equal neighbours allowed), ``counts`` how many pixels show each.

    The same threshold bit for bit when there are at most OTSU_SAMPLE pixels and
    their running sums are exact in float64, as for 8-bit grey levels and the ink
    contrasts ``paper.ink_contrast`` makes of them (multiples of 2**-23
    under 256): every split between different levels then sees the same sums, and
    the same arithmetic. A split inside a run of equal levels scores 0 here, -1
    there: every other split scores above 0, so the same one wins. Written for a
    small image's few dozen levels, where each numpy call's overhead is the cost.
    """
    return float(ascending[otsu_split(ascending, counts)])


def otsu_split(ascending: np.ndarray, counts: np.ndarray) -> int:
    """Where ``otsu_of_counts`` splits the levels: the index of the threshold's level;
    where any two levels differ, every level after it is higher (the ink) and every
    level up to it no higher."""
    if ascending.size < 2:
        return 0
    below = np.add.accumulate(counts, dtype=np.float64)
    cumulative = np.add.accumulate(ascending * counts, dtype=np.float64)
    count, total = below[-1], cumulative[-1]
    below, cumulative = below[:-1], cumulative[:-1]
    above = count - below
    between = below * above * (cumulative / below - (total - cumulative) / above) ** 2
    between *= ascending[1:] != ascending[:-1]
    return int(between.argmax())


def quantiles_of_counts(
    ascending: np.ndarray, running: np.ndarray, fractions: tuple[float, ...]
) -> list[float]:
    """``[quantile(np.repeat(ascending, counts), f) for f in fractions]`` bit for bit,
    from the levels and their running counts (``np.add.accumulate(counts)``), without
    the repeat: a binary search finds each rank."""
    size = int(running[-1])
    ranks = running.tolist()
    quantiles = []
    for fraction in fractions:
        # As ``quantile`` reads the repeated levels at its two ranks.
        position = fraction * (size - 1)
        below = int(position)
        above = min(below + 1, size - 1)
        weight = position - below
        low = ascending[bisect.bisect_right(ranks, below)]
        high = ascending[bisect.bisect_right(ranks, above)]
        quantiles.append(float(low * (1.0 - weight) + high * weight))
    return quantiles


def rough_extent(grey: np.ndarray, counts: Sequence[int] | np.ndarray | None = None) -> int:
    """A cheap, rough size of what an image shows on its paper: the longer side of the
    box of the rows and columns that hold two pixels or more of the class, of Otsu's
    two, that covers less of the image (a digit's size runs a few pixels under what
    the ink search finds, its anti-aliased edge, more where shadows join the class),
    at a tenth of the search's cost. ``grey``: whole grey levels (others are cut
    down to one); ``counts``: their histogram, when known."""
    if counts is None:
        counts = np.bincount(grey.astype(np.uint8).ravel(), minlength=256)
    counts = np.asarray(counts)
    present = counts.nonzero()[0]
    marked = grey <= otsu_of_counts(WHOLE_LEVELS[present], counts[present])
    if np.count_nonzero(marked) * 2 > marked.size:
        marked = ~marked
    rows = np.flatnonzero(marked.sum(axis=1, dtype=np.int32) >= 2)
    columns = np.flatnonzero(marked.sum(axis=0, dtype=np.int32) >= 2)
    if rows.size == 0 or columns.size == 0:
        return 0
    return int(max(rows[-1] - rows[0], columns[-1] - columns[0])) + 1
