"""Training variants of the real writers' digits."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from model import augment, realdigits
from tests.conftest import fonts
from tests.model.test_realdigits import PEN_FILE, gz


def test_a_rewritten_digit_keeps_its_strokes_shapes(tmp_path: Path) -> None:
    seven, four = realdigits.read_pendigits(gz(tmp_path / "pen.gz", PEN_FILE))
    rng = np.random.default_rng(3)
    stretches, offsets = [], []
    for _ in range(50):
        one = augment.rewritten(seven, rng)
        assert one.label == 7 and len(one.strokes) == 1
        (original,), (stroke,) = seven.strokes, one.strokes
        # One stroke: only narrower or wider.
        np.testing.assert_allclose(stroke[:, 1], original[:, 1])
        stretch = (stroke[1, 0] - stroke[0, 0]) / (original[1, 0] - original[0, 0])
        np.testing.assert_allclose(stroke[:, 0], original[:, 0] * stretch, rtol=1e-5)
        stretches.append(stretch)
        two = augment.rewritten(four, rng)
        assert two.label == 4 and len(two.strokes) == 2
        # Each stroke moves as a whole, by a few percent of the digit's size.
        moved = [new[:, 1] - old[:, 1] for new, old in zip(two.strokes, four.strokes, strict=True)]
        for shift in moved:
            np.testing.assert_allclose(shift, shift[0], atol=1e-3)
        offsets.append(abs(moved[0][0] - moved[1][0]))
    assert 0.75 <= min(stretches) < 0.9 and 1.15 < max(stretches) <= 1.3
    assert 0 < np.median(offsets) < 0.1 * 300  # the 4 is 300 tablet units tall


def test_a_non_digit_that_is_one_upright_bar_is_a_one(mnist) -> None:
    """Left out of the non-digits: a tall box or a long ellipse in a generated scene
    normalises to what a 1 written as one stroke normalises to."""
    bar = np.zeros((28, 28), dtype=np.float32)
    bar[4:24, 12:16] = 1.0
    assert augment.one_upright_bar(bar)
    ones = mnist.train.images[mnist.train.labels == 1][:500].astype(np.float32) / 255
    others = mnist.train.images[mnist.train.labels != 1][:500].astype(np.float32) / 255
    assert np.mean([augment.one_upright_bar(x) for x in ones]) > 0.1
    assert not any(augment.one_upright_bar(x) for x in others)
    assert not augment.one_upright_bar(bar.T)  # lying down: a dash, no 1
    assert not augment.one_upright_bar(np.zeros((28, 28), dtype=np.float32))


def test_measured_letters_are_characters_their_font_draws(monkeypatch) -> None:
    noto = next(path for path in fonts(training=True) if path.name == "NotoSans-Regular.ttf")
    # Noto Sans has no check mark: it draws its .notdef box for one.
    assert augment.has_glyph(noto, "A") and not augment.has_glyph(noto, "✓")
    monkeypatch.setattr(augment, "NOT_DIGIT_CHARACTERS", "✓A")
    rng = np.random.default_rng(0)
    measured = {augment.glyph_choice(rng, [noto], drawn_only=True)[0] for _ in range(40)}
    trained = {augment.glyph_choice(rng, [noto])[0] for _ in range(40)}
    assert measured == {"A"} and trained == {"A", "✓"}  # training's draws as before


def test_drawn_letters_train_on_characters_their_font_draws(monkeypatch, mnist) -> None:
    """``model.train --drawn-letters``: the training non-digits' letters as measured."""
    noto = next(path for path in fonts(training=True) if path.name == "NotoSans-Regular.ttf")
    monkeypatch.setattr(augment, "NOT_DIGIT_CHARACTERS", "✓A")
    drawn: list[str] = []
    choose = augment.glyph_choice

    def recorded(*args, **kwargs) -> tuple[str, Path]:
        drawn.append((chosen := choose(*args, **kwargs))[0])
        return chosen

    monkeypatch.setattr(augment, "glyph_choice", recorded)
    for only, wanted in ((True, {"A"}), (False, {"A", "✓"})):
        drawn.clear()
        extra = {"fonts": [noto], "digits": mnist.train.images[:10], "drawn_only": only}
        augment._render_chunk(("negative", 60, 0, extra))  # 40 % of them letters
        assert set(drawn) == wanted


def test_every_font_draws_the_characters_it_is_asked_for() -> None:
    """An "x" is about as wide as it is tall in every font letters are drawn in; a
    font whose code points name other glyphs (Dingbats' "x" is a bar like a 1, its
    "¶" a circled 1) would put digits among the non-digits."""
    for path in fonts(training=True) + fonts(training=False):
        left, top, right, bottom = augment._font(path, 48).getbbox("x")
        assert right - left >= 0.6 * (bottom - top), path.name
