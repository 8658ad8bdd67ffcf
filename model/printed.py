"""Digits written on printed lines: squared and ruled paper, a form's box.

An exercise book's squares or rules, or a form's cell, come along with a digit
cropped from them. Each renderer takes an MNIST digit (uint8, ink bright) and
draws it, dark ink, over lines printed lighter and thinner than the pen (a form's
box darker), on a page that may lie turned by up to TILT degrees (a phone held a
little askew); grey uint8 for ``model.world``.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from PIL import Image, ImageDraw

from model import distort as d

PAPER = 245.0
TILT = 3.0  # degrees either way


def _ink(digit: np.ndarray, rng: np.random.Generator, margin: tuple[int, int]) -> np.ndarray:
    """The digit's ink at 70–160 px high, with a margin of ``margin`` px around it."""
    ink = d.cropped(d.mnist_ink(digit), level=0.2)
    scale = rng.uniform(70, 160) / ink.shape[0]
    ink = d.resized(ink, round(ink.shape[1] * scale), round(ink.shape[0] * scale))
    return d.padded(ink, *(int(m) for m in rng.integers(margin[0], margin[1] + 1, 4)))


def turned(rng: np.random.Generator) -> float:
    """A page turned by up to TILT degrees: its flat lines' rise per column."""
    return float(np.tan(np.radians(rng.uniform(-TILT, TILT))))


def _lines(
    shape: tuple[int, int],
    rng: np.random.Generator,
    spacing: int,
    across: bool,
    down: bool,
) -> np.ndarray:
    """Coverage of printed lines ``spacing`` px apart, 1–2 px wide, tilted a little:
    rows of them (``across``) and columns (``down``)."""
    height, width = shape
    image = Image.new("L", (width, height), 0)
    draw = ImageDraw.Draw(image)
    slope = turned(rng)
    thickness = int(rng.integers(1, 3))
    start = rng.integers(0, spacing, 2)
    if across:
        for row in range(int(start[0]), height + spacing, spacing):
            draw.line([(0, row), (width, row + slope * width)], fill=255, width=thickness)
    if down:
        for column in range(int(start[1]), width + spacing, spacing):
            draw.line([(column, 0), (column - slope * height, height)], fill=255, width=thickness)
    return np.asarray(image, dtype=np.float32) / 255.0


def _written(ink: np.ndarray, lines: np.ndarray, line_level: float, rng) -> np.ndarray:
    """Dark ink over the printed lines on white paper, sensor noise."""
    paper = PAPER - (PAPER - line_level) * lines
    ink_level = rng.uniform(15, 70)
    pixels = paper * (1 - ink) + ink_level * ink + rng.normal(0, 2, ink.shape)
    return np.clip(pixels, 0, 255).astype(np.uint8)


def squared(digit: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """On squared paper (an exercise book's 5 mm squares): 3–6 squares a digit high."""
    ink = _ink(digit, rng, (10, 40))
    spacing = max(8, round(ink.shape[0] / rng.uniform(3, 6)))
    lines = _lines(ink.shape, rng, spacing, across=True, down=True)
    return _written(ink, lines, rng.uniform(140, 210), rng)


def ruled(digit: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """On ruled paper: 1.5–3 rules a digit high."""
    ink = _ink(digit, rng, (10, 40))
    spacing = max(8, round(ink.shape[0] / rng.uniform(1.5, 3)))
    lines = _lines(ink.shape, rng, spacing, across=True, down=False)
    return _written(ink, lines, rng.uniform(140, 210), rng)


def form_box(digit: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """In a form's printed box, cropped with 0–12 px of paper around the box."""
    ink = _ink(digit, rng, (6, 24))
    height, width = ink.shape
    image = Image.new("L", (width, height), 0)
    inset, thickness = int(rng.integers(0, 13)), int(rng.integers(1, 3))
    slope, middle = turned(rng), np.array([(width - 1) / 2, (height - 1) / 2])
    corners = np.array([(0, 0), (1, 0), (1, 1), (0, 1), (0, 0)]) * (middle * 2 - 2 * inset) + inset
    outline = (corners - middle) @ np.array([[1, slope], [-slope, 1]]) + middle
    draw = ImageDraw.Draw(image)
    draw.line([tuple(point) for point in outline], fill=255, width=thickness, joint="curve")
    lines = np.asarray(image, dtype=np.float32) / 255.0
    return _written(ink, lines, rng.uniform(40, 140), rng)


RENDERED: dict[str, Callable[[np.ndarray, np.random.Generator], np.ndarray]] = {
    "on squared paper": squared,
    "on ruled paper": ruled,
    "in a form's box": form_box,
}
