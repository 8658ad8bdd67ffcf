"""The uploads the benchmarks send, generated at run time (no image is committed).

- ``digit.png``: a 28×28 grey PNG, white ink on black as in MNIST. It is a
  *training* image read through ``model.data`` when MNIST is on this machine
  (never the test set), otherwise a "7" drawn with PIL; ``source`` says which.
- ``photo.jpg``: a ~300×300 RGB JPEG "phone photo" of the same digit: dark
  strokes on light-grey paper lit unevenly, with sensor noise.
- ``number.png``: a 6-digit number written dark on white in a 600×150 grey PNG
  (``model.numbers.six_digit_png``) of MNIST training digits (drawn 7s without
  MNIST), for ``POST /read``.
- ``blank.png`` (one colour), ``random.bin`` (random bytes) and ``empty.png``
  (no bytes): invalid uploads for the soak.
"""

from __future__ import annotations

import functools
import io
import json
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

SEED = 20261124
MNIST_TRAIN_INDEX = 0  # a training image, never a test one


@dataclass(frozen=True)
class Input:
    kind: str
    path: Path
    content_type: str
    expected_status: int
    bytes: int
    route: str = "/predict"


def _encode(image: Image.Image, format: str, **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=format, **options)
    return buffer.getvalue()


def drawn_digit() -> np.ndarray:
    """A "7" drawn at 4× and reduced: 28×28 uint8, white on black, anti-aliased."""
    big = Image.new("L", (112, 112), 0)
    draw = ImageDraw.Draw(big)
    draw.line([(30, 24), (82, 24), (50, 92)], fill=255, width=10, joint="curve")
    draw.line([(42, 58), (70, 58)], fill=255, width=8)
    return np.asarray(big.filter(ImageFilter.GaussianBlur(2)).resize((28, 28), Image.BOX))


@functools.cache
def _mnist_training_digits():
    from model import data

    return data.load(download=False).train


def training_digit() -> tuple[np.ndarray, str, int | None]:
    """A digit to send: an MNIST training image if available, else a drawn one."""
    try:
        training = _mnist_training_digits()
    except Exception as error:  # no MNIST on this machine: draw one
        return drawn_digit(), f"drawn with PIL (MNIST not available: {type(error).__name__})", 7
    index = MNIST_TRAIN_INDEX
    return (
        training.images[index],
        f"MNIST training image #{index}",
        int(training.labels[index]),
    )


def training_pngs(count: int) -> list[bytes]:
    """``count`` different digits as 28×28 PNGs: MNIST training images from the one
    ``training_digit`` sends on, if available, else the drawn one shifted."""
    try:
        images = _mnist_training_digits().images[MNIST_TRAIN_INDEX : MNIST_TRAIN_INDEX + count]
    except Exception:  # no MNIST on this machine
        images = [np.roll(drawn_digit(), shift % 5 - 2, axis=shift % 2) for shift in range(count)]
    return [_encode(Image.fromarray(image), "PNG") for image in images]


def number_png() -> bytes:
    """A 6-digit number in a 600×150 PNG, of MNIST training digits if available."""
    from model import data, numbers

    try:
        digits = _mnist_training_digits()
    except Exception:  # no MNIST on this machine: six drawn 7s
        digits = data.Split(drawn_digit()[np.newaxis], np.array([7], dtype=np.uint8))
    return numbers.six_digit_png(digits, np.random.default_rng(SEED))


def photo(digit: np.ndarray, side: int = 300, seed: int = SEED) -> Image.Image:
    """Dark strokes on light-grey, unevenly lit paper with noise, as a phone takes it."""
    rng = np.random.default_rng(seed)
    ink_side = int(side * 0.6)
    ink = Image.fromarray(digit).resize((ink_side, ink_side), Image.Resampling.BICUBIC)
    ink = np.asarray(ink.filter(ImageFilter.GaussianBlur(1.5)), dtype=np.float32) / 255.0
    coverage = np.zeros((side, side), dtype=np.float32)
    top, left = int(side * 0.22), int(side * 0.18)
    coverage[top : top + ink_side, left : left + ink_side] = ink
    rows, columns = np.mgrid[0:side, 0:side].astype(np.float32) / side
    paper = 200.0 + 22.0 * (columns - 0.5) - 14.0 * (rows - 0.5) ** 2  # a lamp to one side
    grey = paper * (1.0 - 0.72 * coverage) + rng.normal(0.0, 4.0, (side, side))
    tint = np.array([1.0, 0.98, 0.93], dtype=np.float32)  # warm light
    rgb = np.clip(grey[..., None] * tint, 0, 255).astype(np.uint8)
    return Image.fromarray(rgb, mode="RGB")


def write_inputs(folder: Path) -> tuple[dict[str, Input], dict]:
    """Write every upload into ``folder``; return them by kind, and what they are."""
    folder.mkdir(parents=True, exist_ok=True)
    digit, source, label = training_digit()
    rng = np.random.default_rng(SEED)
    contents = {
        "png": ("digit.png", "image/png", 200, _encode(Image.fromarray(digit), "PNG")),
        "jpeg": ("photo.jpg", "image/jpeg", 200, _encode(photo(digit), "JPEG", quality=88)),
        "empty": ("empty.png", "image/png", 400, b""),
        "random": ("random.bin", "image/png", 415, rng.bytes(4096)),
        "blank": (
            "blank.png",
            "image/png",
            422,
            _encode(Image.new("L", (64, 64), 214), "PNG"),
        ),
    }
    inputs = {}
    for kind, (name, content_type, status, content) in contents.items():
        path = folder / name
        path.write_bytes(content)
        inputs[kind] = Input(kind, path, content_type, status, len(content))
    number = number_png()
    (folder / "number.png").write_bytes(number)
    inputs["number"] = Input(
        "number", folder / "number.png", "image/png", 200, len(number), route="/read"
    )
    description = {
        "digit_source": source,
        "digit_label": label,
        "files": {kind: {**asdict(item), "path": str(item.path)} for kind, item in inputs.items()},
    }
    (folder / "inputs.json").write_text(json.dumps(description, indent=2))
    return inputs, description
