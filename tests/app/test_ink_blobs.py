"""app.ink_blobs: the digit's blobs found within the strokes' box, as over the image."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

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
