"""A shadow across a photographed page (a phone or a hand over it) is no ink."""

from __future__ import annotations

import io

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image

from app import paper
from tests.app.handwriting import draw_number
from tests.app.test_page_photos import post, shade


def shadowed(page: Image.Image, angle: float, depth: float = 0.4, soft: float = 3.0) -> bytes:
    """``page`` (grey, dark ink on white) photographed on tinted paper with a shadow
    taking ``depth`` of the light over the half of it that lies towards ``angle``
    (degrees), its edge ``soft`` px wide, through the middle; noise, JPEG."""
    ink = 1.0 - np.asarray(page, dtype=np.float32) / 255.0
    pixels = (215.0 * (1 - ink) + 35.0 * ink) * shade(ink.shape, angle, depth, soft)
    pixels += np.random.default_rng(0).normal(0, 3, pixels.shape)
    buffer = io.BytesIO()
    Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8)).save(buffer, "JPEG", quality=85)
    return buffer.getvalue()


@pytest.mark.parametrize("digit", ["2", "4", "7"])
@pytest.mark.parametrize("angle", [0, 120, 250])
def test_a_digit_half_in_shadow_is_read(client: TestClient, digit: str, angle: int) -> None:
    page, _ = draw_number(digit, size=120, margin=50)
    assert post(client, "/predict", shadowed(page, angle))["digit"] == int(digit)


@pytest.mark.parametrize("angle", [0, 100, 200])
def test_a_number_half_in_shadow_is_read(client: TestClient, angle: int) -> None:
    page, _ = draw_number("2574", size=80, margin=40)
    assert post(client, "/read", shadowed(page, angle))["number"] == "2574"


def test_the_shaded_paper_is_relit() -> None:
    grey = np.full((200, 300), 220.0, dtype=np.float32)
    grey[:, :120] *= 0.6  # a shadow over the left
    grey[80:120, 200:206] = 30.0  # a stroke in the light
    relit = paper.out_of_shade(grey)
    assert np.all(np.abs(relit[:, :100] - 220.0) < 2.0)  # the shade is gone
    assert relit[100, 203] < 40.0  # the stroke stays


def heavy_stroke() -> np.ndarray:
    """A marker's grey blot in the middle, wider than the closing's window."""
    grey = np.full((200, 200), 240.0, dtype=np.float32)
    grey[50:150, 50:150] = 140.0
    return grey


def dark_screen() -> np.ndarray:
    """Light strokes on a dark screen, thick enough to outlast the closing."""
    grey = np.full((200, 200), 30.0, dtype=np.float32)
    grey[:, :110] = 200.0
    grey[60:140, 140:150] = 255.0
    return grey


@pytest.mark.parametrize(
    "grey", [heavy_stroke(), dark_screen()], ids=["a heavy stroke", "a dark screen"]
)
def test_what_is_no_shadow_is_left_as_it_is(grey: np.ndarray) -> None:
    assert paper.out_of_shade(grey) is grey
