"""Property-based tests of preprocessing (issue 7): whatever the upload, the answer is
the network's 28×28×1 float32 input in [0, 1] or a ``PreprocessingError``, never
an exception of another kind."""

from __future__ import annotations

import io

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from PIL import Image, ImageDraw

from app.levels import FINE, ascending, ascending_fine, median_distance
from app.preprocessing import PreprocessingError, preprocess

PROPERTY_SETTINGS = settings(
    max_examples=200,
    deadline=None,  # a 300×300 TIFF on a busy machine; speed is tested elsewhere
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    derandomize=True,  # the same examples every run: a failure here is a real bug
)
MODES = ["1", "L", "P", "RGB", "RGBA", "LA", "PA", "I;16", "I", "F", "CMYK", "LAB"]
# The formats each mode can be written as by Pillow (what a client could send).
FORMATS = {
    "1": ["PNG", "GIF", "BMP", "TIFF", "JPEG", "WEBP"],
    "L": ["PNG", "GIF", "BMP", "TIFF", "JPEG", "WEBP"],
    "P": ["PNG", "GIF", "BMP", "TIFF"],
    "RGB": ["PNG", "GIF", "BMP", "TIFF", "JPEG", "WEBP"],
    "RGBA": ["PNG", "GIF", "TIFF", "WEBP"],
    "LA": ["PNG", "TIFF"],
    "PA": ["PNG"],
    "I;16": ["PNG", "TIFF"],
    "I": ["PNG", "TIFF"],
    "F": ["TIFF"],
    "CMYK": ["TIFF", "JPEG"],
    "LAB": ["TIFF"],  # CIELab, as scanners and Photoshop write it
}


def check_output(result: np.ndarray) -> None:
    assert isinstance(result, np.ndarray)
    assert result.shape == (28, 28, 1) and result.dtype == np.float32
    assert np.isfinite(result).all()
    assert 0.0 <= float(result.min()) and float(result.max()) <= 1.0


def preprocess_or_clear_error(data: bytes) -> np.ndarray | None:
    try:
        result = preprocess(data)
    except PreprocessingError as error:
        assert str(error)  # a message the client can read
        return None
    check_output(result)
    return result


@st.composite
def images(draw: st.DrawFn) -> tuple[Image.Image, str]:
    """An image of any size, mode and polarity, with a mark anywhere (or none)."""
    width = draw(st.integers(1, 300))
    height = draw(st.integers(1, 300))
    mode = draw(st.sampled_from(MODES))
    paper = draw(st.integers(0, 255))
    ink = draw(st.integers(0, 255))  # as dark, as light, or as faint as it likes
    grey = Image.new("L", (width, height), paper)
    canvas = ImageDraw.Draw(grey)
    for _ in range(draw(st.integers(0, 4))):
        points = [
            (draw(st.integers(-20, width + 20)), draw(st.integers(-20, height + 20)))
            for _ in range(draw(st.integers(2, 4)))
        ]
        canvas.line(points, fill=ink, width=draw(st.integers(1, max(1, min(width, height) // 3))))
    if draw(st.booleans()):
        rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
        noise = rng.normal(0.0, draw(st.floats(0.0, 60.0)), (height, width))
        grey = Image.fromarray(np.clip(np.asarray(grey) + noise, 0, 255).astype(np.uint8))
    if mode in ("RGBA", "LA", "PA"):
        # Strokes on a transparent canvas, the transparent pixels of any colour.
        alpha = Image.fromarray(
            np.where(np.asarray(grey) == paper, draw(st.integers(0, 255)), 255).astype(np.uint8)
        )
        image = grey.convert("RGBA")
        image.putalpha(alpha)
        image = image.convert(mode) if mode != "PA" else image.convert("P").convert("PA")
    elif mode == "I;16":
        image = Image.fromarray(np.asarray(grey, dtype=np.uint16) * draw(st.integers(1, 257)))
    elif mode == "I":
        image = Image.fromarray(np.asarray(grey, dtype=np.int32) * draw(st.integers(-1000, 1000)))
    elif mode == "F":
        values = np.asarray(grey, dtype=np.float32) * draw(st.floats(-1e30, 1e30))
        if draw(st.booleans()):  # float TIFFs can hold NaN and infinities
            values.flat[:: draw(st.integers(1, 400))] = draw(
                st.sampled_from([np.nan, np.inf, -np.inf])
            )
        image = Image.fromarray(values)
    else:
        image = grey.convert(mode)
    return image, draw(st.sampled_from(FORMATS[mode]))


def encode(image: Image.Image, format: str) -> bytes:
    buffer = io.BytesIO()
    try:
        image.save(buffer, format=format)
    except (OSError, ValueError, KeyError):
        assume(False)  # Pillow cannot write this combination: nothing to test
    return buffer.getvalue()


@PROPERTY_SETTINGS
@given(images())
def test_any_image_gives_the_network_input_or_a_clear_error(drawn) -> None:
    image, format = drawn
    preprocess_or_clear_error(encode(image, format))


@PROPERTY_SETTINGS
@given(
    images(),
    st.lists(st.tuples(st.integers(0, 2**31), st.integers(0, 255)), min_size=1, max_size=8),
    st.integers(0, 2**31),
)
def test_corrupted_files_give_a_clear_error_or_a_result(drawn, flips, cut) -> None:
    """Bytes flipped anywhere (headers included) and the file cut short."""
    image, format = drawn
    data = bytearray(encode(image, format))
    for position, value in flips:
        data[position % len(data)] = value
    preprocess_or_clear_error(bytes(data[: max(1, cut % (len(data) + 1))]))


@settings(max_examples=100, deadline=None, derandomize=True)
@given(st.binary(max_size=2048))
def test_arbitrary_bytes(data: bytes) -> None:
    preprocess_or_clear_error(data)


@settings(max_examples=60, deadline=None, derandomize=True)
@given(
    st.sampled_from(["PNG", "GIF", "BMP", "TIFF", "JPEG", "WEBP"]),
    st.binary(min_size=0, max_size=512),
)
def test_a_real_header_followed_by_garbage(format: str, tail: bytes) -> None:
    header = encode(Image.new("L", (40, 40), 255), format)[:32]
    preprocess_or_clear_error(header + tail)


@PROPERTY_SETTINGS
@given(
    size=st.integers(40, 300),
    row=st.floats(0.2, 0.8),
    column=st.floats(0.2, 0.8),
    light_on_dark=st.booleans(),
)
def test_a_clear_mark_is_always_found_and_centred(
    size: int, row: float, column: float, light_on_dark: bool
) -> None:
    """Wherever a clear stroke is, and whichever its polarity, it fills the 20×20
    box of MNIST with its centre of mass at the centre."""
    paper, ink = (0, 255) if light_on_dark else (255, 0)
    image = Image.new("L", (size, size), paper)
    half = size // 6
    x, y = int(column * size), int(row * size)
    ImageDraw.Draw(image).line(
        [(x - half, y - half), (x + half, y + half)], fill=ink, width=max(2, size // 20)
    )
    result = preprocess_or_clear_error(encode(image, "PNG"))
    assert result is not None
    pixels = result[..., 0]
    assert pixels.max() == pytest.approx(1.0)
    rows, columns = np.nonzero(pixels)
    assert max(rows.max() - rows.min(), columns.max() - columns.min()) + 1 <= 22
    grid_rows, grid_columns = np.mgrid[0:28, 0:28]
    total = pixels.sum()
    assert abs((grid_rows * pixels).sum() / total - 14) <= 1.0
    assert abs((grid_columns * pixels).sum() / total - 14) <= 1.0


@settings(max_examples=500, deadline=None, derandomize=True)
@given(
    values=st.lists(
        st.floats(min_value=-1e6, max_value=1e6, allow_nan=False, width=32),
        min_size=1,
        max_size=200,
    ),
    centre=st.one_of(
        st.floats(min_value=-1e6, max_value=1e6, allow_nan=False), st.sampled_from([0.0])
    ),
    pick=st.integers(min_value=0),
)
def test_median_distance_is_numpys_median_bit_for_bit(values, centre, pick) -> None:
    """The noise floor's spread, found by selection, equals np.median's exactly:
    odd and even counts, ties, the centre inside, outside or on the values."""
    ascending = np.sort(np.asarray(values, dtype=np.float32))
    for at in (centre, float(ascending[pick % ascending.size])):
        expected = float(np.median(np.abs(ascending - at)))
        assert median_distance(ascending, at) == expected


@settings(max_examples=300, deadline=None, derandomize=True)
@given(
    values=st.lists(
        st.one_of(
            st.integers(min_value=0, max_value=255).map(float),  # an 8-bit image's levels
            st.floats(min_value=-300, max_value=300, width=32),  # and anything else
        ),
        min_size=1,
        max_size=300,
    ),
    whole=st.booleans(),
)
def test_ascending_sorts_as_numpy_does(values, whole) -> None:
    """The image's sort, counted where every value is a whole grey level (``whole``:
    all of them are), otherwise compared: numpy's order either way."""
    grey = np.asarray(values, dtype=np.float32)
    if whole:
        grey = np.clip(np.abs(np.rint(np.nan_to_num(grey))), 0, 255)
    got = ascending(grey.reshape(1, -1))
    assert got.dtype == np.float32
    np.testing.assert_array_equal(got, np.sort(grey, axis=None))


@settings(max_examples=200, deadline=None, derandomize=True)
@given(values=st.lists(st.floats(min_value=0, max_value=255, width=32), min_size=1, max_size=300))
def test_a_photos_ink_is_sorted_to_a_fine_step(values) -> None:
    """A flattened photo's ink statistics: its values in numpy's order, each cut
    down by less than FINE (a 1/256th of a grey level), never raised."""
    ink = np.asarray(values, dtype=np.float32).reshape(1, -1)
    got, exact = ascending_fine(ink), np.sort(ink, axis=None)
    assert got.shape == exact.shape
    assert np.all(got <= exact)
    assert np.all(exact - got < FINE)
