"""Writing habits drawn onto digits: a 7 crossed at mid-height."""

from __future__ import annotations

import numpy as np
import pytest

from model import augment, habits
from model.realdigits import PenDigit
from tests.app.test_handwriting import STROKES, pen_digit


def test_a_crossed_seven_gains_a_bar_across_its_stem_and_keeps_its_strokes() -> None:
    seven = pen_digit(STROKES[7], width=12)
    rows = np.flatnonzero((seven > 0.3).any(axis=1))
    for seed in range(20):
        crossed = habits.crossed_seven(seven, np.random.default_rng(seed))
        assert crossed.shape == seven.shape and (crossed >= seven).all()
        added = (crossed > 0.5) & (seven < 0.5)
        bar_rows = np.flatnonzero(added.any(axis=1))
        # At 42-60 % of the ink's height, as thick as a stroke (12 px), give or take.
        middle = (bar_rows.mean() - rows[0]) / (rows[-1] - rows[0])
        assert 0.38 < middle < 0.64 and len(bar_rows) <= 22
        # Across the stem: ink added on both sides of it.
        row = int(bar_rows.mean())
        stem = np.flatnonzero(seven[row] > 0.5).mean()
        columns = np.flatnonzero(added[row])
        assert columns.min() < stem - 10 and columns.max() > stem + 10


def test_a_crossed_pen_seven_gains_one_stroke_across_its_stem() -> None:
    stem = np.array([[20, 12], [80, 12], [42, 90]], dtype=np.float32)
    seven = PenDigit(7, (stem,), writer=5)
    for seed in range(20):
        crossed = habits.crossed_pen_seven(seven, np.random.default_rng(seed))
        assert crossed.label == 7 and crossed.writer == 5 and len(crossed.strokes) == 2
        assert crossed.strokes[0] is stem
        (left, y_left), (right, y_right) = crossed.strokes[1]
        y = (y_left + y_right) / 2
        assert 12 + 0.4 * 78 < y < 12 + 0.62 * 78 and abs(y_left - y_right) < 5
        x_on_stem = 80 + (y - 12) * (42 - 80) / 78
        assert abs((left + right) / 2 - x_on_stem) < 1 and 10 < right - left < 45


@pytest.mark.parametrize("share", [0.0, 0.3])
def test_training_crosses_the_share_of_sevens_it_is_asked_to(monkeypatch, share: float) -> None:
    """``augment._render_chunk`` asks for a crossed 7 in ``--crossed-sevens`` of the 7s
    and of no other digit; at 0 (the shipped recipe) it draws nothing for it, so that
    every variant is rendered as before."""
    asked, draws = [], []

    def world_variant(item, rng, crossed=False):
        asked.append((item, crossed))
        draws.append(rng.random())
        return (255 * pen_digit(STROKES[7], width=12)).astype(np.uint8)

    monkeypatch.setattr(augment, "world_variant", world_variant)
    items = [(7, 7), (1, 1)] * 300
    augment._render_chunk(("world", items, 0, {"crossed_sevens": share}))
    sevens = [crossed for item, crossed in asked if item == 7]
    assert not any(crossed for item, crossed in asked if item == 1)
    if share:
        assert share - 0.08 < np.mean(sevens) < share + 0.08
    else:
        assert not any(sevens)
        rng = np.random.default_rng(0)
        assert draws == [rng.random() for _ in items]  # nothing drawn between the variants
