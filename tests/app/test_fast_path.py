"""The fast path for small clean PNGs gives the general path's input, bit for bit,
and leaves every other upload to it."""

from __future__ import annotations

import re
import struct
import zlib

import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageFilter, PngImagePlugin

from app import fast_path, ink_blobs, levels, paper, preprocessing
from tests.app.test_rules import sheet
from tests.conftest import png_bytes

LIMITS = preprocessing.Limits()


def mnist_like(seed: int) -> np.ndarray:
    """A random pen stroke or two drawn at 4×, blurred and reduced: 28×28 uint8,
    white on black, anti-aliased, in a 20 px box with a 4 px black margin."""
    rng = np.random.default_rng(seed)
    big = Image.new("L", (80, 80), 0)
    draw = ImageDraw.Draw(big)
    for _ in range(rng.integers(1, 3)):
        points = [tuple(point) for point in rng.uniform(4, 76, (rng.integers(2, 6), 2))]
        draw.line(points, fill=int(rng.integers(160, 256)), width=int(rng.integers(5, 14)))
    if rng.random() < 0.5:  # a speck apart from the strokes
        x, y = rng.uniform(4, 72, 2)
        draw.ellipse((x, y, x + 3, y + 3), fill=255)
    small = big.filter(ImageFilter.GaussianBlur(float(rng.uniform(0.5, 2.5)))).resize(
        (20, 20), Image.Resampling.BOX
    )
    canvas = Image.new("L", (28, 28), 0)
    canvas.paste(small, (4, 4))
    return np.asarray(canvas)


def canvas_drawing(seed: int, side: int = 64, mode: str = "RGBA") -> Image.Image:
    """A digit drawn on a small opaque canvas with a round pen, as the page draws."""
    rng = np.random.default_rng(seed)
    white, black = (255, 255, 255, 255), (0, 0, 0, 255)
    paper, ink = (white, black) if seed % 2 else (black, white)
    image = Image.new("RGBA", (side, side), paper)
    draw = ImageDraw.Draw(image)
    points = [tuple(point) for point in rng.uniform(side * 0.2, side * 0.8, (4, 2))]
    draw.line(points, fill=ink, width=max(2, side // 12), joint="curve")
    return image.convert(mode)


def general(data: bytes) -> np.ndarray:
    return preprocessing.normalize_digit(preprocessing.open_image(data, LIMITS))


def assert_fast_and_identical(data: bytes) -> None:
    """The same input, and the same ink map (which a refusal looks at), bit for bit."""
    fast = fast_path.input_and_ink(data, LIMITS)
    assert fast is not None, "expected the fast path"
    network_input, ink = fast
    assert network_input.dtype == np.float32 and network_input.shape == (28, 28, 1)
    decoded = preprocessing.decode(preprocessing.open_image(data, LIMITS))
    expected_input, expected_ink = preprocessing.input_and_ink(decoded)
    np.testing.assert_array_equal(network_input, expected_input)
    np.testing.assert_array_equal(ink, expected_ink)
    np.testing.assert_array_equal(fast_path.small_clean_png(data, LIMITS), general(data))


@pytest.mark.parametrize("seed", range(60))
def test_mnist_like_pngs_both_polarities(seed: int) -> None:
    digit = mnist_like(seed)
    assert_fast_and_identical(png_bytes(digit))
    assert_fast_and_identical(png_bytes(255 - digit))


@pytest.mark.parametrize("seed", range(12))
def test_grey_paper_colour_and_margins(seed: int) -> None:
    digit = mnist_like(100 + seed).astype(np.float32)
    digit /= digit.max()  # the full contrast: a faint one may be evened (below)
    paper, ink = (200.0, 40.0) if seed % 2 else (30.0, 230.0)
    grey = np.rint(paper + (ink - paper) * digit).astype(np.uint8)
    grey = np.pad(grey, (seed % 4) * 6, constant_values=int(paper))  # 28 to 64 px a side
    assert_fast_and_identical(png_bytes(grey))
    assert_fast_and_identical(png_bytes(Image.fromarray(grey).convert("RGB")))
    assert_fast_and_identical(png_bytes(Image.fromarray(grey).convert("LA")))
    tinted = np.stack([grey, np.clip(grey.astype(int) + 9, 0, 255).astype(np.uint8), grey], -1)
    assert_fast_and_identical(png_bytes(tinted))  # colour: Pillow's grey conversion


@pytest.mark.parametrize("side", [48, 64])
def test_a_faint_image_of_56_px_or_more_takes_the_general_path(side: int) -> None:
    """Its light may be evened first (``paper.evened``), which the fast path does not do."""
    digit = mnist_like(3).astype(np.float32) / 255.0
    grey = np.pad(
        np.rint(200 - 90 * digit / digit.max()).astype(np.uint8),
        (side - 28) // 2,
        constant_values=200,
    )
    data = png_bytes(grey)
    if side >= paper.FLATTEN_MIN_SIDE:
        not_fast(data)
    else:
        assert_fast_and_identical(data)


@pytest.mark.parametrize("seed", range(10))
@pytest.mark.parametrize("side", [32, 48, 64])
def test_canvas_drawings(seed: int, side: int) -> None:
    assert_fast_and_identical(png_bytes(canvas_drawing(seed, side)))


def test_the_mnist_training_digits(training_digits) -> None:
    """A few touch the frame (the border is then not one level): the general path."""
    images, _ = training_digits
    fast = 0
    for image in images[:200]:
        for pixels in (image, 255 - image):
            data = png_bytes(pixels)
            result = fast_path.small_clean_png(data, LIMITS)
            if result is not None:
                fast += 1
                np.testing.assert_array_equal(result, general(data))
    assert fast >= 0.95 * 400


def test_inert_chunks_are_read_past() -> None:
    digit = Image.fromarray(mnist_like(1))
    assert_fast_and_identical(png_bytes(digit, dpi=(72, 72)))  # pHYs
    assert_fast_and_identical(png_bytes(digit, icc_profile=b"\0" * 128))  # iCCP


def not_fast(data: bytes) -> None:
    """The fast path declines, and the entry point answers as the general path."""
    assert fast_path.small_clean_png(data, LIMITS) is None
    try:
        expected = preprocessing.preprocess(data, LIMITS)
    except preprocessing.PreprocessingError as error:
        with pytest.raises(type(error), match=re.escape(str(error))):
            fast_path.preprocess(data, LIMITS)
    else:
        np.testing.assert_array_equal(fast_path.preprocess(data, LIMITS), expected)


def test_transparency_takes_the_general_path() -> None:
    strokes = canvas_drawing(1).getchannel("R")
    transparent = Image.new("RGBA", strokes.size, (0, 0, 0, 0))
    transparent.putalpha(Image.eval(strokes, lambda level: 255 - level))
    not_fast(png_bytes(transparent))
    half = canvas_drawing(2)
    half.putalpha(200)
    not_fast(png_bytes(half))
    keyed = Image.fromarray(mnist_like(3))
    not_fast(png_bytes(keyed, transparency=0))  # a tRNS chunk


def test_uneven_paper_takes_the_general_path() -> None:
    digit = mnist_like(4).astype(np.float32) / 255.0
    paper = np.linspace(180, 230, 28, dtype=np.float32)[np.newaxis, :]
    not_fast(png_bytes(np.rint(paper * (1.0 - 0.8 * digit)).astype(np.uint8)))


def test_larger_images_take_the_general_path(monkeypatch: pytest.MonkeyPatch) -> None:
    not_fast(png_bytes(np.pad(mnist_like(5), 19)))  # 66 px
    not_fast(png_bytes(canvas_drawing(6, side=280)))
    # A large PNG costs the event loop its header, not a pass over its pixels.
    large = png_bytes(canvas_drawing(6, side=60).resize((600, 60)))
    checked, crc32 = [], zlib.crc32
    monkeypatch.setattr(
        fast_path.zlib, "crc32", lambda data: checked.append(len(data)) or crc32(data)
    )
    assert fast_path.small_clean_png(large, LIMITS) is None
    assert checked == [17]  # IHDR's type and body


def test_other_pngs_take_the_general_path() -> None:
    digit = Image.fromarray(mnist_like(7))
    not_fast(png_bytes(digit.convert("P")))  # palette
    not_fast(png_bytes(digit.convert("I;16")))  # 16 bits
    info = PngImagePlugin.PngInfo()
    info.add_text("Comment", "may hold EXIF")
    not_fast(png_bytes(digit, pnginfo=info))
    exif = Image.Exif()
    exif[0x0112] = 6  # rotated: only the general path reads orientation
    not_fast(png_bytes(digit, exif=exif))
    not_fast(png_bytes(digit, format="GIF"))


def test_broken_and_digitless_pngs_get_the_general_paths_error() -> None:
    data = png_bytes(mnist_like(8))
    not_fast(data[:-20])  # truncated
    corrupt = bytearray(data)
    corrupt[40] ^= 0xFF  # in the pixels: the CRC no longer matches
    not_fast(bytes(corrupt))
    not_fast(png_bytes(np.full((28, 28), 214, dtype=np.uint8)))  # blank
    faint = (mnist_like(9) // 24).astype(np.uint8)  # ten grey levels of contrast
    not_fast(png_bytes(faint))
    not_fast(b"\x89PNG\r\n\x1a\n")


@pytest.mark.parametrize(
    ("kind", "body"),
    [
        (b"gAMA", b"\0\0\1"),  # a gamma of three bytes
        (b"sRGB", b""),
        (b"cHRM", b"\0" * 31),
        (b"pHYs", b"\0" * 8),
        (b"iCCP", b"sRGB\0\1" + zlib.compress(b"\0" * 128)),  # not deflate
        (b"iCCP", b"no name's end"),
        (b"iCCP", b"sRGB\0"),  # no method
        (b"iCCP", b"sRGB\0\0not zlib"),  # Pillow reads on without the profile
    ],
)
def test_inert_chunks_pillow_refuses_take_the_general_path(kind: bytes, body: bytes) -> None:
    """A short or broken inert chunk: Pillow refuses the file (or reads past an ICC
    profile that does not inflate), and the fast path reads none of them."""
    data = png_bytes(Image.fromarray(mnist_like(3)))
    chunk = struct.pack(">I", len(body)) + kind + body
    chunk += struct.pack(">I", zlib.crc32(kind + body))
    after_header = 8 + 25  # the signature and IHDR
    not_fast(data[:after_header] + chunk + data[after_header:])


def test_a_valid_png_with_a_bad_idat_stream_is_refused_as_the_general_path_refuses() -> None:
    header = struct.pack(">IIBBBBB", 28, 28, 8, 0, 0, 0, 0)

    def chunk(kind: bytes, body: bytes) -> bytes:
        checksum = struct.pack(">I", zlib.crc32(kind + body))
        return struct.pack(">I", len(body)) + kind + body + checksum

    data = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", b"nonsense")
    not_fast(data + chunk(b"IEND", b""))


def test_pixel_limit_applies() -> None:
    data = png_bytes(mnist_like(10))
    assert fast_path.small_clean_png(data, preprocessing.Limits(max_pixels=700)) is None
    with pytest.raises(preprocessing.ImageTooLargeError):
        fast_path.preprocess(data, preprocessing.Limits(max_pixels=700))


def random_levels(seed: int, least: int, most: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Between ``least`` and ``most`` pixels of 8-bit grey levels, a few dozen of them
    common: their histogram (256 counts), the levels present, and every pixel sorted
    (float32)."""
    rng = np.random.default_rng(seed)
    pixels = rng.choice(
        256, size=int(rng.integers(least, most + 1)), p=rng.dirichlet(np.ones(256) / 8)
    )
    counts = np.bincount(pixels, minlength=256)
    return counts, np.flatnonzero(counts), np.sort(pixels).astype(np.float32)


@pytest.mark.parametrize("seed", range(20))
def test_otsu_of_counts_equals_otsu_over_every_value(seed: int) -> None:
    counts, present, ascending = random_levels(seed, 2, 4096)
    expected = levels.otsu(ascending)
    values = np.arange(256, dtype=np.float32)
    assert levels.otsu_of_counts(values[present], counts[present]) == expected
    # The ink contrast of dark strokes: 255/paper times the levels under the paper.
    contrast = paper.ink_contrast(values, 231.0, dark_ink=True)
    ink_values, ink_counts = contrast[present][::-1], counts[present][::-1]
    assert levels.otsu_of_counts(ink_values, ink_counts) == levels.otsu(
        np.sort(paper.ink_contrast(ascending, 231.0, dark_ink=True))
    )
    # Levels with equal neighbours (contrast clipped to 0 above a dark paper).
    contrast = paper.ink_contrast(values, 90.0, dark_ink=False)
    assert levels.otsu_of_counts(contrast[present], counts[present]) == levels.otsu(
        np.sort(paper.ink_contrast(ascending, 90.0, dark_ink=False))
    )
    # The split: the levels over the threshold are those after it, equal ones or not.
    split = levels.otsu_split(contrast[present], counts[present])
    over = contrast[present] > levels.otsu_of_counts(contrast[present], counts[present])
    if len(set(contrast[present].tolist())) > 1:
        assert over.tolist() == [index > split for index in range(present.size)]


@pytest.mark.parametrize("seed", range(20))
def test_quantiles_of_counts_equal_quantiles_of_every_value(seed: int) -> None:
    counts, present, ascending = random_levels(seed, 1, 4999)
    fractions = (0.0, 0.001, 0.5, 0.9, 0.999, 1.0)
    assert levels.quantiles_of_counts(
        np.arange(256, dtype=np.float32)[present], np.add.accumulate(counts[present]), fractions
    ) == [levels.quantile(ascending, fraction) for fraction in fractions]


def test_may_take_reads_the_signature_and_the_header_alone() -> None:
    small = png_bytes(mnist_like(3))
    assert fast_path.may_take(small)
    assert fast_path.may_take(png_bytes(np.zeros((3, 64), dtype=np.uint8)))
    assert not fast_path.may_take(png_bytes(np.zeros((28, 65), dtype=np.uint8)))  # too wide
    assert not fast_path.may_take(png_bytes(np.zeros((2, 28), dtype=np.uint8)))  # too thin
    assert not fast_path.may_take(png_bytes(mnist_like(3), format="JPEG"))
    assert not fast_path.may_take(small[:20])  # the header cut short
    assert not fast_path.may_take(small + bytes(fast_path.MAX_BYTES))  # too long to read inline


FORM_FOUR = [((20, 10), (14, 36), (40, 36)), ((32, 20), (32, 50))]


def batch_of_uploads() -> list[bytes]:
    """A micro-batch's worth: MNIST-like digits of both polarities (some with a speck
    apart: two blobs), canvas drawings of three sizes, a four in a form's box and one
    whose stem runs into the box (one blob with its lines), and uploads the fast path
    leaves to the general path (transparent, blank, corrupt)."""
    boxed, _ = sheet((56, 60), FORM_FOUR, pen=4, box=(4, 4, 51, 55), line=2, level=90.0)
    joined, _ = sheet(
        (56, 60),
        [FORM_FOUR[0], ((32, 20), (32, 56))],
        pen=4,
        box=(4, 4, 51, 55),
        line=2,
        level=90.0,
    )
    transparent = np.zeros((28, 28, 4), dtype=np.uint8)
    transparent[..., 3] = np.maximum(mnist_like(1), 1)
    corrupt = bytearray(png_bytes(mnist_like(2)))
    corrupt[40] ^= 0xFF
    return [
        *(png_bytes(mnist_like(seed)) for seed in range(16)),
        *(png_bytes(255 - mnist_like(seed)) for seed in range(16, 24)),
        *(png_bytes(canvas_drawing(seed, side)) for seed, side in enumerate((32, 48, 64, 64))),
        png_bytes(boxed.astype(np.uint8)),
        png_bytes(joined.astype(np.uint8)),
        png_bytes(transparent),
        png_bytes(np.full((28, 28), 200, dtype=np.uint8)),
        bytes(corrupt),
    ]


def test_uploads_read_together_get_each_ones_reading_alone() -> None:
    """``inputs_and_inks``: each upload's input and ink as alone, bit for bit, and the
    general path's input; None for each the general path must read."""
    uploads = batch_of_uploads()
    together = fast_path.inputs_and_inks(uploads, LIMITS)
    assert len(together) == len(uploads)
    for index, (data, read) in enumerate(zip(uploads, together, strict=True)):
        alone = fast_path.input_and_ink(data, LIMITS)
        assert (read is None) == (alone is None), index
        if read is not None and alone is not None:
            np.testing.assert_array_equal(read[0], alone[0])
            np.testing.assert_array_equal(read[1], alone[1])
            np.testing.assert_array_equal(read[0], general(data))
    assert [read is None for read in together[-3:]] == [True, True, True]
    assert sum(read is not None for read in together) == len(uploads) - 3


def test_strokes_labelled_together_keep_each_images_blobs() -> None:
    """``ink_blobs.digit_inks``: one blob each kept as it is, the others (specks, a
    box's lines) as ``digit_ink`` keeps them; both kinds are in the batch."""
    greys = [fast_path._png_grey(data, LIMITS) for data in batch_of_uploads()[:-3]]
    strengths = [fast_path._ink_strength(grey) for grey in greys if grey is not None]
    assert len(strengths) == len(greys)
    copies = [preprocessing.InkStrength(s.ink.copy(), s.strokes.copy(), s.noisy) for s in strengths]
    lone = ink_blobs._lone_blobs([s.strokes for s in strengths[:24]])  # the 28×28 ones
    assert 0 < sum(lone) < len(lone)
    assert ink_blobs._lone_blobs([s.strokes for s in strengths[-2:]]) == [False, True]
    for kept, strength in zip(ink_blobs.digit_inks(strengths), copies, strict=True):
        np.testing.assert_array_equal(kept, ink_blobs.digit_ink(strength))
