"""app.ink_blobs: the digit's blobs found within the strokes' box, as over the image."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import ndimage

from app import ink_blobs, preprocessing


def kept_both_ways(
    strength: preprocessing.InkStrength, monkeypatch: pytest.MonkeyPatch
) -> tuple[np.ndarray, np.ndarray]:
    """digit_ink as it runs, and over the whole image (no window is ever worth it)."""
    windowed = ink_blobs.digit_ink(
        preprocessing.InkStrength(strength.ink.copy(), strength.strokes, strength.noisy)
    )
    with monkeypatch.context() as patch:
        patch.setattr(ink_blobs, "WINDOW_SHARE", 0.0)
        whole = ink_blobs.digit_ink(
            preprocessing.InkStrength(strength.ink.copy(), strength.strokes, strength.noisy)
        )
    return windowed, whole


@st.composite
def photos_of_blobs(draw) -> preprocessing.InkStrength:
    """A 130-220 px ink map: a few stroke blobs somewhere (touching the edge or not),
    faint ink around and between them, specks, noise over the whole."""
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    height, width = int(rng.integers(130, 220)), int(rng.integers(130, 220))
    ink = (rng.random((height, width)) * draw(st.sampled_from([0.0, 0.08, 0.15]))).astype(
        np.float32
    )
    for _ in range(draw(st.integers(1, 6))):
        size = int(rng.integers(2, 40))
        top, left = int(rng.integers(-5, height - 2)), int(rng.integers(-5, width - 2))
        level = float(rng.choice([0.3, 1.0]))
        ink[max(0, top) : top + size, max(0, left) : left + int(rng.integers(2, 40))] = level
        if rng.random() < 0.5:  # a faint tail running off the blob
            ink[max(0, top) : top + 2, max(0, left) : width] = np.maximum(
                ink[max(0, top) : top + 2, max(0, left) : width], 0.12
            )
    return preprocessing.InkStrength(ink, ink >= 0.3, noisy=bool(rng.random() < 0.5))


@settings(max_examples=300, deadline=None, derandomize=True)
@given(photos_of_blobs())
def test_the_window_changes_nothing(strength: preprocessing.InkStrength) -> None:
    with pytest.MonkeyPatch.context() as monkeypatch:
        windowed, whole = kept_both_ways(strength, monkeypatch)
    np.testing.assert_array_equal(windowed, whole)


def test_a_faint_blob_running_out_of_the_window_is_followed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Two strokes joined through a faint trail that leaves their box: the window
    gives way to the whole image, and the trail is kept as over the whole image."""
    ink = np.zeros((300, 300), dtype=np.float32)
    ink[100:160, 100:110] = 1.0  # a stroke
    ink[100:160, 140:150] = 1.0  # another
    ink[155:157, 105:290] = 0.15  # a faint trail from the first far to the right
    ink[200:280, 20:25] = 0.02  # and faint paper unevenness
    strength = preprocessing.InkStrength(ink, ink >= 0.5, noisy=True)
    outcomes = []
    digit_strokes = ink_blobs._digit_strokes
    monkeypatch.setattr(
        ink_blobs,
        "_digit_strokes",
        lambda *args: outcomes.append(found := digit_strokes(*args)) or found,
    )
    windowed, whole = kept_both_ways(strength, monkeypatch)
    assert outcomes[0] is None, "the trail runs out of the strokes' box"
    np.testing.assert_array_equal(windowed, whole)
    assert windowed[156, 280] > 0 and windowed[240, 22] == 0


def ring(ink: np.ndarray, rows: slice, columns: slice, width: float) -> None:
    """Draw an upright ring (a 0) filling ``rows`` × ``columns`` of ``ink``."""
    r, c = np.mgrid[0 : ink.shape[0], 0 : ink.shape[1]].astype(np.float32)
    centre_r, centre_c = (rows.start + rows.stop - 1) / 2, (columns.start + columns.stop - 1) / 2
    radius_r, radius_c = (rows.stop - rows.start) / 2, (columns.stop - columns.start) / 2
    distance = np.hypot((r - centre_r) / radius_r, (c - centre_c) / radius_c)
    inside = (distance <= 1) & (distance >= 1 - width / min(radius_r, radius_c))
    ink[inside] = 1.0


def crop_with(*pieces: tuple[slice, slice], rows: slice = slice(0, 64)) -> np.ndarray:
    """A tight crop, 64 × 56: a 0 (in ``rows``: touching the top and bottom) clear of
    both sides, and solid ``pieces`` (rows, columns)."""
    ink = np.zeros((64, 56), dtype=np.float32)
    ring(ink, rows, slice(10, 42), 6)
    for piece_rows, columns in pieces:
        ink[piece_rows, columns] = 1.0
    return ink


def kept(ink: np.ndarray) -> np.ndarray:
    return ink_blobs.digit_ink(preprocessing.InkStrength(ink.copy(), ink >= 0.5, noisy=False))


@pytest.mark.parametrize("columns", [slice(50, 56), slice(0, 5)], ids=["right", "left"])
@pytest.mark.parametrize(
    "rows",
    # A third of the digit's height: the tip of the next digit's bulge (an 8 read "8c").
    [slice(8, 50), slice(30, 52)],
    ids=["tall", "a third as tall"],
)
def test_a_neighbours_strokes_cut_by_the_crop_are_dropped(rows: slice, columns: slice) -> None:
    """A digit cut from a line of writing: the next digit's stroke, cut by the edge
    beside it, is not part of it (it turned a 0 into "0)", an 8 into "8(")."""
    ink = crop_with((rows, columns))
    assert not kept(ink)[:, columns].any()
    np.testing.assert_array_equal(kept(ink)[:, 10:42], ink[:, 10:42])


def test_a_neighbour_in_pieces_goes_whole() -> None:
    """The neighbour's strokes, broken: one piece at the edge, one not quite."""
    ink = crop_with((slice(6, 30), slice(52, 56)), (slice(34, 52), slice(47, 51)))
    assert not kept(ink)[:, 44:].any()


@pytest.mark.parametrize(
    ("pieces", "rows"),
    [
        # Short: a broken-off end of the digit's own stroke.
        ([(slice(0, 12), slice(48, 56))], slice(0, 64)),
        # Nearly as heavy as the digit: the other half of a broken 0.
        ([(slice(0, 64), slice(43, 56))], slice(0, 64)),
        # Reaching under the digit, into its columns: a stroke of its own.
        ([(slice(56, 60), slice(30, 56)), (slice(20, 60), slice(52, 56))], slice(0, 50)),
    ],
    ids=["short", "heavy", "under it"],
)
def test_the_digits_own_pieces_at_the_edge_stay(
    pieces: list[tuple[slice, slice]], rows: slice
) -> None:
    ink = crop_with(*pieces, rows=rows)
    np.testing.assert_array_equal(kept(ink), ink)


def test_a_small_crop_is_left_as_it_is() -> None:
    """Under NEIGHBOUR_MIN_HEIGHT px (a 16×16 scan) a digit's own pieces lie a pixel
    or two apart: nothing is taken for a neighbour's."""
    ink = crop_with((slice(8, 50), slice(50, 56)))[::4, ::4].copy()  # 16 × 14
    assert ink[:, -2:].any()
    np.testing.assert_array_equal(kept(ink), ink)


@settings(max_examples=400, deadline=None, derandomize=True)
@given(
    st.integers(1, 64),
    st.integers(1, 64),
    st.floats(0.0, 1.0),
    st.integers(0, 2**32 - 1),
)
def test_blob_count_is_labels_count(height: int, width: int, share: float, seed: int) -> None:
    """Runs joined row to row count the blobs ndimage.label finds with eight
    neighbours: diagonal touches, U shapes joined at the bottom, rings, one-pixel
    rows and columns, masks empty and full."""
    mask = np.random.default_rng(seed).random((height, width)) < share
    _, expected = ndimage.label(mask, structure=ink_blobs.EIGHT_NEIGHBOURS)
    assert ink_blobs.blob_count(mask, mask.size) == expected


def test_blob_count_leaves_many_runs_to_label() -> None:
    """A noise mask's runs are not joined in Python (ms): label counts them."""
    checkers = np.indices((64, 64)).sum(axis=0) % 2 == 1
    assert ink_blobs.blob_count(checkers, ink_blobs.COUNT_MAX_RUNS) is None
    assert ink_blobs.blob_count(checkers[:3], ink_blobs.COUNT_MAX_RUNS) == 1


@pytest.mark.parametrize(
    ("rows", "expected"),
    [
        (["#.#", ".#."], 1),  # a V: two runs joined by the one below
        (["#.#", "#.#", "###"], 1),  # a U: joined at the bottom
        (["###", "#.#", "###"], 1),  # a ring: the last join closes it, no new blob
        (["#..", "..#"], 2),  # two columns apart
        (["#.", ".#"], 1),  # a diagonal touch
        (["#", ".", "#"], 2),
    ],
)
def test_blob_count_of_shapes(rows: list[str], expected: int) -> None:
    mask = np.array([[c == "#" for c in row] for row in rows])
    assert ink_blobs.blob_count(mask, mask.size) == expected
