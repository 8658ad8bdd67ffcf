"""Preprocessing: any upload -> the MNIST-style 28×28×1 input, or a clear error."""

from __future__ import annotations

import base64
import io

import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageFile, ImageFilter

from app import ink_blobs, levels, preprocessing
from app.api.routes.predict import input_png_base64
from app.orientation import upright_size
from app.preprocessing import (
    EmptyImageError,
    ImageTooLargeError,
    Limits,
    NoDigitError,
    UnsupportedImageError,
    preprocess,
)
from tests.conftest import png_bytes


def stroke_digit(size: int = 200, width: int = 18, ink: int = 0, paper: int = 255) -> Image.Image:
    """A '7' drawn with two thick strokes, dark on light by default."""
    image = Image.new("L", (size, size), paper)
    draw = ImageDraw.Draw(image)
    s = size / 200
    draw.line([(50 * s, 40 * s), (150 * s, 40 * s)], fill=ink, width=round(width * s))
    draw.line([(150 * s, 40 * s), (85 * s, 170 * s)], fill=ink, width=round(width * s))
    return image


def centre_of_mass(array: np.ndarray) -> tuple[float, float]:
    rows, columns = np.mgrid[0:28, 0:28]
    total = array.sum()
    return float((rows * array).sum() / total), float((columns * array).sum() / total)


def difference(a: np.ndarray, b: np.ndarray) -> float:
    """Mean absolute difference, forgiving a one-pixel shift (centring rounds)."""
    a, b = a.reshape(28, 28), b.reshape(28, 28)
    return min(
        float(np.abs(np.roll(a, (dy, dx), axis=(0, 1)) - b).mean())
        for dy in (-1, 0, 1)
        for dx in (-1, 0, 1)
    )


def check_mnist_layout(result: np.ndarray) -> None:
    assert result.shape == (28, 28, 1) and result.dtype == np.float32
    assert 0.0 <= result.min() and result.max() <= 1.0
    assert result.max() > 0.9
    pixels = result[..., 0]
    rows = np.flatnonzero(pixels.any(axis=1))
    columns = np.flatnonzero(pixels.any(axis=0))
    assert max(rows[-1] - rows[0], columns[-1] - columns[0]) + 1 == 20
    row, column = centre_of_mass(pixels)
    assert 13.5 <= row <= 14.5 and 13.5 <= column <= 14.5


def test_mnist_digits_come_out_essentially_unchanged(training_digits) -> None:
    images, _ = training_digits
    worst = np.array(
        [np.abs(preprocess(png_bytes(image))[..., 0] - image / 255.0).max() for image in images]
    )
    mean_error = np.array(
        [np.abs(preprocess(png_bytes(image))[..., 0] - image / 255.0).mean() for image in images]
    )
    # Most come back to the grey level; the rest lose a speck or shift by a pixel.
    assert (worst <= 3.01 / 255).mean() >= 0.9
    assert (mean_error < 0.01).mean() >= 0.97


def test_polarity_dark_on_light_equals_light_on_dark() -> None:
    dark_on_light = preprocess(png_bytes(stroke_digit(ink=0, paper=255)))
    light_on_dark = preprocess(png_bytes(stroke_digit(ink=255, paper=0)))
    np.testing.assert_allclose(dark_on_light, light_on_dark, atol=1e-6)
    check_mnist_layout(dark_on_light)


def test_grey_paper_with_darker_ink() -> None:
    result = preprocess(png_bytes(stroke_digit(ink=40, paper=150)))
    reference = preprocess(png_bytes(stroke_digit()))
    assert difference(result, reference) < 0.03


@pytest.mark.parametrize(
    ("orientation", "stored_as"),
    [
        (3, Image.Transpose.ROTATE_180),
        (6, Image.Transpose.ROTATE_90),
        (8, Image.Transpose.ROTATE_270),
    ],
)
def test_exif_orientation_is_applied(orientation: int, stored_as: Image.Transpose) -> None:
    upright = stroke_digit().convert("RGB")
    exif = Image.Exif()
    exif[0x0112] = orientation
    rotated = png_bytes(upright.transpose(stored_as), "JPEG", quality=95, exif=exif)
    reference = preprocess(png_bytes(upright, "JPEG", quality=95))
    assert difference(preprocess(rotated), reference) < 0.01


@pytest.mark.parametrize("format", ["JPEG", "PNG", "TIFF", "WEBP"])
@pytest.mark.parametrize(
    ("orientation", "stored_as"),
    [(6, Image.Transpose.ROTATE_90), (5, Image.Transpose.TRANSPOSE)],
)
def test_a_big_image_is_turned_after_it_is_reduced(
    format: str, orientation: int, stored_as: Image.Transpose
) -> None:
    """Over WORKING_SIZE the image is reduced first and turned after (a 12 MP photo
    is not copied whole to turn it): the orientation survives the reduction in each
    format that stores one, and ``upright_size`` agrees (Pillow turns a TIFF itself,
    as it loads it, and reports its upright size from the start)."""
    upright = Image.new("L", (1400, 1000), 235)
    upright.paste(stroke_digit(600, width=50, paper=235), (700, 200))
    exif = Image.Exif()
    exif[0x0112] = orientation
    options = {"quality": 95} if format in ("JPEG", "WEBP") else {}
    stored = upright.transpose(stored_as).convert("RGB")
    rotated = preprocess(png_bytes(stored, format, exif=exif, **options))
    assert (
        upright_size(preprocessing.open_image(png_bytes(stored, format, exif=exif))) == upright.size
    )
    reference = preprocess(png_bytes(upright.convert("RGB"), format, **options))
    assert difference(rotated, reference) < 0.01
    assert difference(preprocess(png_bytes(stored, format, **options)), reference) > 0.1


def test_canvas_strokes_on_transparency() -> None:
    coverage = np.asarray(stroke_digit(ink=255, paper=0))
    rgba = np.zeros((200, 200, 4), dtype=np.uint8)
    rgba[..., :3] = 20  # dark strokes; the transparent pixels are black too
    rgba[..., 3] = coverage
    result = preprocess(png_bytes(Image.fromarray(rgba, "RGBA")))
    np.testing.assert_allclose(result, preprocess(png_bytes(stroke_digit())), atol=0.02)


def test_light_strokes_on_transparency() -> None:
    coverage = np.asarray(stroke_digit(ink=255, paper=0))
    rgba = np.full((200, 200, 4), 255, dtype=np.uint8)
    rgba[..., 3] = coverage
    result = preprocess(png_bytes(Image.fromarray(rgba, "RGBA")))
    np.testing.assert_allclose(result, preprocess(png_bytes(stroke_digit())), atol=0.02)


def test_off_centre_digit_in_a_huge_photo_is_found_and_centred() -> None:
    sheet = Image.new("L", (3000, 2000), 235)
    sheet.paste(stroke_digit(400, width=30, paper=235), (2400, 1450))
    result = preprocess(png_bytes(sheet.convert("RGB"), "JPEG", quality=85))
    check_mnist_layout(result)
    reference = preprocess(png_bytes(stroke_digit(400, width=30)))
    assert difference(result, reference) < 0.03


def faint_stroke_from_a_blot(pressed: bool) -> Image.Image:
    """A blot (a 6's loop filled in) and a faint hairline rising from it; where the
    pen ``pressed`` harder, two darker dots on the hairline."""
    image = Image.new("L", (120, 120), 255)
    draw = ImageDraw.Draw(image)
    draw.ellipse((35, 65, 85, 105), fill=0)
    draw.line([(60, 70), (75, 40), (85, 15)], fill=180, width=2)
    if pressed:
        for x, y in [(79, 30), (83, 20)]:
            draw.ellipse((x - 1, y - 1, x + 1, y + 1), fill=60)
    return image


def test_darker_dots_on_a_faint_stroke_are_part_of_it() -> None:
    """The dots join the blot through the faint stroke (hysteresis), so they are
    neither specks that take the stroke with them nor a digit of their own: the
    input is the one without them, but for the dots."""
    plain = preprocess(png_bytes(faint_stroke_from_a_blot(pressed=False)))
    pressed = preprocess(png_bytes(faint_stroke_from_a_blot(pressed=True)))
    assert np.abs(pressed - plain).sum() < 0.02 * plain.sum()


def test_a_broken_hairline_beside_a_heavy_stroke_is_kept() -> None:
    """A 7's bar drawn heavy and its stem a hairline the pen broke off: the stem holds
    under SPECK_FRACTION of the bar's ink but is long, so it is no speck (it was
    dropped, and the 7 read as a bar)."""
    image = Image.new("L", (200, 200), 255)
    draw = ImageDraw.Draw(image)
    draw.line([(50, 40), (150, 40)], fill=0, width=30)
    draw.line([(140, 75), (85, 170)], fill=60, width=1)
    for x, y in ((30, 120), (170, 150), (60, 185)):  # specks: still dropped
        draw.ellipse((x, y, x + 3, y + 3), fill=0)
    network_input = preprocess(png_bytes(image))[..., 0]
    stem = network_input[18:, :]  # under the bar, which fills rows 8-17
    assert stem.sum() > 0.5 and np.count_nonzero(stem > 0.05) >= 8
    assert network_input[18:, :10].sum() + network_input[:, 24:].sum() < 0.2  # no speck


def test_strokes_fainter_than_the_bridges_are_still_strokes() -> None:
    """Joining strokes through faint pixels only adds to them: a stroke whose ink is
    under FAINT_INK (its threshold near the noise floor) stays, beside a heavier one."""
    ink = np.zeros((40, 40), dtype=np.float32)
    ink[5:15, 5:15] = 1.0  # a heavy blob
    ink[20:36, 20:36] = 0.8 * ink_blobs.FAINT_INK  # a faint one, a fifth of its mass
    strength = preprocessing.InkStrength(ink.copy(), ink > 0, noisy=True)  # ink off strokes goes
    kept = ink_blobs.digit_ink(strength)
    np.testing.assert_array_equal(kept, ink)


def test_dark_strokes_on_a_light_cut_out_over_transparency() -> None:
    # A sticker or cut-out: dark strokes on a band of white paper, transparent
    # around it, the transparent pixels black. Mostly white where opaque, yet the
    # strokes are the digit, not the paper's outline.
    strokes = np.asarray(stroke_digit(), dtype=np.uint8)
    cut_out = np.asarray(stroke_digit(width=58, ink=255, paper=0))
    rgba = np.zeros((200, 200, 4), dtype=np.uint8)
    rgba[..., :3] = np.where(cut_out > 0, strokes, 0)[..., None]
    rgba[..., 3] = cut_out
    result = preprocess(png_bytes(Image.fromarray(rgba, "RGBA")))
    assert difference(result, preprocess(png_bytes(stroke_digit()))) < 0.02


def test_translucent_everywhere() -> None:
    rgba = np.asarray(stroke_digit().convert("RGBA")).copy()
    rgba[..., 3] = 200
    result = preprocess(png_bytes(Image.fromarray(rgba, "RGBA")))
    assert difference(result, preprocess(png_bytes(stroke_digit()))) < 0.02


def test_palette_image_with_a_transparent_paper_colour() -> None:
    # Soft strokes in a palette whose paper entry is transparent: the strokes' light
    # edges stay opaque and outnumber their dark cores.
    soft = stroke_digit(112, width=10).filter(ImageFilter.GaussianBlur(3))
    image = soft.convert("P")
    image.info["transparency"] = int(np.asarray(image)[0, 0])
    assert difference(preprocess(png_bytes(image)), preprocess(png_bytes(soft))) < 0.02


def test_specks_of_dust_are_ignored() -> None:
    image = stroke_digit()
    draw = ImageDraw.Draw(image)
    for x, y in [(10, 180), (185, 120), (20, 20)]:
        draw.ellipse([x, y, x + 3, y + 3], fill=0)
    np.testing.assert_allclose(
        preprocess(png_bytes(image)), preprocess(png_bytes(stroke_digit())), atol=1e-6
    )


MODES = ["1", "L", "P", "RGB", "RGBA", "LA", "I;16", "CMYK", "I", "F"]


@pytest.mark.parametrize("mode", MODES)
def test_every_mode(mode: str) -> None:
    base = stroke_digit()
    if mode == "I;16":
        image = Image.fromarray((np.asarray(base, dtype=np.uint16) * 257).astype(np.uint16))
    elif mode == "LA":
        image = Image.merge(
            "LA", (Image.new("L", base.size, 0), Image.eval(base, lambda v: 255 - v))
        )
    else:
        image = base.convert(mode)
    format = {"CMYK": "TIFF", "I": "TIFF", "F": "TIFF"}.get(mode, "PNG")
    result = preprocess(png_bytes(image, format))
    assert difference(result, preprocess(png_bytes(base))) < 0.03


@pytest.mark.parametrize(
    ("format", "options"),
    [
        ("PNG", {}),
        ("JPEG", {"quality": 90}),
        ("GIF", {}),
        ("BMP", {}),
        ("WEBP", {"quality": 90}),
        ("TIFF", {}),
    ],
)
def test_every_format(format: str, options: dict) -> None:
    image = stroke_digit().convert("RGB")
    result = preprocess(png_bytes(image, format, **options))
    assert difference(result, preprocess(png_bytes(stroke_digit()))) < 0.03


def test_animated_gif_reads_the_first_frame() -> None:
    frames = [stroke_digit().convert("P"), Image.new("P", (200, 200), 255)]
    buffer = io.BytesIO()
    frames[0].save(buffer, "GIF", save_all=True, append_images=frames[1:] * 50, duration=10)
    result = preprocess(buffer.getvalue())
    assert difference(result, preprocess(png_bytes(stroke_digit()))) < 0.03


def test_big_jpeg_is_decoded_at_reduced_scale() -> None:
    image = stroke_digit(4000).convert("RGB")
    opened = preprocessing.open_image(png_bytes(image, "JPEG", quality=80))
    decoded = preprocessing.decode(opened)
    assert max(decoded.size) <= preprocessing.WORKING_SIZE
    check_mnist_layout(
        preprocessing.normalize_digit(
            preprocessing.open_image(png_bytes(image, "JPEG", quality=80))
        )
    )


def read_as_uploaded(data: bytes) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The network input and ink map ``input_and_ink`` makes of an upload, as the
    service reads it, and the input it makes at full size."""
    opened = preprocessing.open_image(data)
    decoded = preprocessing.decode(opened)
    network_input, ink = preprocessing.input_and_ink(decoded, preprocessing.is_photo(opened))
    return network_input, ink, preprocessing.input_and_ink(decoded)[0]


def test_a_photo_whose_digit_fills_much_of_it_is_read_at_the_glance_size() -> None:
    image = stroke_digit(480, width=40, paper=235)
    photo = png_bytes(image.convert("RGB"), "JPEG", quality=90)
    glanced, ink, full = read_as_uploaded(photo)
    assert ink.shape == (preprocessing.GLANCE_SIZE,) * 2
    np.testing.assert_array_equal(preprocess(photo), glanced)  # as the service reads it
    check_mnist_layout(glanced)
    assert difference(glanced, full) < 0.02
    # The same pixels as a scan or a screenshot (PNG): read at full size.
    assert read_as_uploaded(png_bytes(image))[1].shape == (480, 480)


def test_a_photo_whose_digit_is_small_is_read_at_full_size(monkeypatch) -> None:
    sheet = Image.new("L", (500, 500), 235)
    sheet.paste(stroke_digit(100, width=10, paper=235), (300, 320))  # 29 px at the glance
    searched = []
    strength = preprocessing.ink_strength
    monkeypatch.setattr(
        preprocessing, "ink_strength", lambda g, *a: searched.append(g.shape) or strength(g, *a)
    )
    network_input, ink, full = read_as_uploaded(png_bytes(sheet, "JPEG", quality=90))
    assert ink.shape == (500, 500)
    np.testing.assert_array_equal(network_input, full)
    # Its rough size said so before any search at the glance size.
    assert searched == [(500, 500), (500, 500)]  # the service's reading, then full


@pytest.mark.parametrize("ink", [0.0, 255.0])
def test_the_rough_extent_is_the_smaller_class_box_without_lone_specks(ink: float) -> None:
    grey = np.full((120, 160), 255.0 - ink, dtype=np.float32)
    grey[30:60, 40:90] = ink  # 30 x 50: the smaller class, either polarity
    grey[5, 150] = grey[110, 3] = ink  # specks alone in their rows and columns
    assert levels.rough_extent(grey) == 50
    counts = np.bincount(grey.astype(np.uint8).ravel(), minlength=256)
    assert levels.rough_extent(grey, counts.tolist()) == 50
    assert levels.rough_extent(np.full((40, 40), 128.0, dtype=np.float32)) == 0


def test_paper_noise_averaged_away_at_the_glance_sends_a_photo_to_full_size() -> None:
    # Reduced to the glance, paper noise of one grey level falls under a level: the
    # paper reads as clean and its faint unevenness all as ink, to the frame's edges.
    page = np.full((680, 680), 250.0)
    page[190:490, 190:490] = np.asarray(stroke_digit(300, width=24, paper=250))
    page += np.random.default_rng(0).normal(0, 1, page.shape)
    photo = png_bytes(Image.fromarray(np.clip(page, 0, 255).astype(np.uint8)), "JPEG", quality=95)
    network_input, ink, full = read_as_uploaded(photo)
    assert ink.shape == (preprocessing.WORKING_SIZE,) * 2
    check_mnist_layout(network_input)
    np.testing.assert_array_equal(network_input, full)


def test_empty_upload() -> None:
    with pytest.raises(EmptyImageError):
        preprocess(b"")


@pytest.mark.parametrize(
    "content",
    [b"hello, world", b"<html><body>7</body></html>", b"%PDF-1.4\n", bytes(range(256)) * 4],
)
def test_not_an_image(content: bytes) -> None:
    with pytest.raises(UnsupportedImageError, match="not an image"):
        preprocess(content)


def test_truncated_png() -> None:
    content = png_bytes(stroke_digit())
    with pytest.raises(UnsupportedImageError):
        preprocess(content[: len(content) // 2])


def test_pixel_limit_is_checked_before_decoding(monkeypatch: pytest.MonkeyPatch) -> None:
    from tests.app.test_hostile_inputs import png_claiming  # (it imports this module)

    decoded: list[tuple[int, int]] = []
    load = ImageFile.ImageFile.load

    def spy(image: ImageFile.ImageFile):
        decoded.append(image.size)
        return load(image)

    monkeypatch.setattr(ImageFile.ImageFile, "load", spy)
    # A header claiming 25 MP over 64 bytes of pixels: decoded, it would be a
    # truncated file (415); judged by its header, it is too large (413). Under
    # Pillow's own bomb limit, so the answer is ours.
    with pytest.raises(ImageTooLargeError, match="5000x5000 = 25,000,000 pixels"):
        preprocess(png_claiming(5000, 5000))
    # A 1-bit 12000×12000 PNG is tiny on the wire and 144 MP once decoded.
    bomb = png_bytes(Image.new("1", (12000, 12000), 0))
    assert len(bomb) < 100_000
    with pytest.raises(ImageTooLargeError, match="limit is 16,000,000"):
        preprocess(bomb)
    with pytest.raises(ImageTooLargeError):
        preprocess(png_bytes(stroke_digit()), Limits(max_pixels=100))
    assert decoded == []  # not a pixel of any of them
    preprocess(png_bytes(stroke_digit()))
    assert set(decoded) == {(200, 200)}  # (the spy sees decodes)


@pytest.mark.parametrize("image", [Image.new("L", (50, 50), 255), Image.new("RGB", (1, 1))])
def test_blank_images_have_no_digit(image: Image.Image) -> None:
    with pytest.raises(NoDigitError, match="No digit found"):
        preprocess(png_bytes(image))


def test_noise_alone_is_not_a_digit() -> None:
    noise = np.random.default_rng(1).normal(128, 3, (300, 300))
    with pytest.raises(NoDigitError):
        preprocess(png_bytes(Image.fromarray(np.clip(noise, 0, 255).astype(np.uint8))))


def test_input_png_round_trip() -> None:
    result = preprocess(png_bytes(stroke_digit()))
    decoded = Image.open(io.BytesIO(base64.b64decode(input_png_base64(result))))
    assert decoded.size == (28, 28) and decoded.mode == "L"
    np.testing.assert_allclose(np.asarray(decoded) / 255.0, result[..., 0], atol=0.5 / 255)


@pytest.mark.parametrize("shape", [(28, 28), (3, 50), (300, 200)])
@pytest.mark.parametrize("steps", [1, 2, 5])
def test_dilation_matches_scipy(shape: tuple[int, int], steps: int) -> None:
    from scipy import ndimage

    mask = np.random.default_rng(steps).random(shape) < 0.02
    expected = ndimage.binary_dilation(mask, iterations=steps)
    np.testing.assert_array_equal(ink_blobs.dilated(mask, steps), expected)


def test_otsu_on_many_values_splits_where_all_of_them_would() -> None:
    rng = np.random.default_rng(5)
    values = np.sort(
        np.concatenate([rng.normal(30, 8, 90_000), rng.normal(200, 20, 6_000)]).astype(np.float32)
    )
    sampled = levels.otsu(values)  # over OTSU_SAMPLE values: a sample of them

    # Otsu over every value, the textbook way.
    cumulative = np.cumsum(values, dtype=np.float64)
    below = np.arange(1, values.size, dtype=np.float64)
    mean_below = cumulative[:-1] / below
    mean_above = (cumulative[-1] - cumulative[:-1]) / (values.size - below)
    exact = float(values[np.argmax(below * (values.size - below) * (mean_below - mean_above) ** 2)])

    # Any threshold in the gap between the two modes separates them about equally
    # well, so the two may differ there; what matters is the pixels they split off.
    assert 60 < exact < 170 and 60 < sampled < 170
    assert abs(int((values > sampled).sum()) - int((values > exact).sum())) < values.size / 1000
