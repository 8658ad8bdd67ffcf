"""app.pillow_core gives what Pillow's public API gives, bit for bit."""

from __future__ import annotations

import io
import struct

import numpy as np
import pytest
from PIL import Image

from app import pillow_core


def _png(image: Image.Image) -> tuple[bytes, int, int]:
    """An image saved as PNG: its IDAT data joined, and its sides."""
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    data, position, idat = buffer.getvalue(), 8, []
    while position < len(data):
        length, kind = struct.unpack_from(">I4s", data, position)
        if kind == b"IDAT":
            idat.append(data[position + 8 : position + 8 + length])
        position += 12 + length
    return b"".join(idat), image.width, image.height


def _noisy(mode: str, width: int, height: int, seed: int) -> Image.Image:
    """Smooth shapes and noise: rows that Pillow's encoder filters in every way."""
    rng = np.random.default_rng(seed)
    bands = len(mode)
    ramp = np.add.outer(np.arange(height), np.arange(width))[..., np.newaxis] * 7
    pixels = (ramp + rng.integers(0, 40, (height, width, bands))) % 256
    if mode in ("LA", "RGBA"):
        pixels[..., -1] = 255
    pixels = pixels.astype(np.uint8)
    return Image.fromarray(pixels[..., 0] if bands == 1 else pixels, mode)


@pytest.mark.parametrize("mode", ["L", "LA", "RGB", "RGBA"])
@pytest.mark.parametrize(("width", "height"), [(28, 28), (3, 5), (64, 17), (1, 1)])
def test_inflated_grey_is_pillows_decode_and_conversion(mode, width, height):
    image = _noisy(mode, width, height, seed=width * height)
    idat, width, height = _png(image)
    expected = Image.frombytes(mode, (width, height), idat, "zip", mode).convert("L").tobytes()
    assert expected == image.convert("L").tobytes()  # the test's own PNG is what it drew
    assert pillow_core.inflated_grey(idat, mode, width, height) == expected


@pytest.mark.parametrize("mode", ["LA", "RGBA"])
def test_inflated_grey_refuses_any_pixel_not_opaque(mode):
    image = _noisy(mode, 20, 20, seed=3)
    pixels = np.array(image)
    pixels[7, 11, -1] = 254
    idat, width, height = _png(Image.fromarray(pixels, mode))
    assert pillow_core.inflated_grey(idat, mode, width, height) is None


def test_inflated_grey_refuses_short_and_corrupt_data():
    idat, width, height = _png(_noisy("L", 28, 28, seed=4))
    assert pillow_core.inflated_grey(idat, "L", width, height) is not None
    assert pillow_core.inflated_grey(idat[: len(idat) // 2], "L", width, height) is None
    assert pillow_core.inflated_grey(b"\x00" * 40, "L", width, height) is None
    # A stream that ends a row early: Pillow's rows, the missing one black, as its API.
    taller = Image.frombytes("L", (width, height + 1), idat, "zip", "L").tobytes()
    assert pillow_core.inflated_grey(idat, "L", width, height + 1) == taller


@pytest.mark.parametrize(
    "resample",
    [Image.Resampling.LANCZOS, Image.Resampling.BOX, Image.Resampling.BILINEAR],
)
@pytest.mark.parametrize(
    ("shape", "size"),
    [((57, 23), (20, 9)), ((20, 20), (20, 20)), ((9, 13), (14, 20)), ((300, 200), (48, 32))],
)
def test_resized_is_pillows_resize(resample, shape, size):
    values = np.random.default_rng(sum(shape)).random(shape, dtype=np.float32) * 1.5 - 0.2
    expected = np.asarray(Image.fromarray(values, mode="F").resize(size, resample))
    got = pillow_core.resized(values, size, resample)
    assert got.dtype == np.float32 and got.shape == (size[1], size[0])
    assert np.array_equal(got, expected)


def test_resized_takes_other_float_arrays_as_float32():
    values = np.random.default_rng(5).random((31, 17))  # float64, and a strided view
    view = values[::2, ::-1]
    expected = np.asarray(
        Image.fromarray(np.ascontiguousarray(view, np.float32), mode="F").resize(
            (5, 9), Image.Resampling.LANCZOS
        )
    )
    assert np.array_equal(pillow_core.resized(view, (5, 9), Image.Resampling.LANCZOS), expected)
