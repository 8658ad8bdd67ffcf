"""Digits as people upload them, rendered from held-out MNIST digits.

The service's accuracy on clean MNIST says little about a phone photo of ink on
paper. This module renders digits the way real uploads arrive — photos (large,
off-centre, EXIF-rotated, uneven light, JPEG noise; the same photos as HEIC and
AVIF), canvas drawings (dark strokes on transparency), scans, dark-mode
screenshots, and every format and mode the service accepts — and measures the
service on them:

    python -m model.uploads [--count 1000] [--url http://127.0.0.1:8000] [--kinds photo heic]

Sources are the validation digits that ``model.train`` holds out (never the test
set, never images the shipped model was trained on). Without ``--url`` the
service's own code runs in-process.
"""

from __future__ import annotations

import argparse
import io
import json
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageFilter

from app import heif  # noqa: F401  (registers the HEIC plugin, which writes HEIC too)
from model import data

ORIENTATION_TAG = 0x0112
# EXIF orientation -> the transpose that turns upright pixels into the stored ones
# (the inverse of what a viewer applies).
STORED_AS = {
    1: None,
    3: Image.Transpose.ROTATE_180,
    6: Image.Transpose.ROTATE_90,
    8: Image.Transpose.ROTATE_270,
}


@dataclass(frozen=True)
class Upload:
    kind: str
    label: int
    content: bytes
    filename: str
    content_type: str


def _ink(digit: np.ndarray, size: int, rng: np.random.Generator, degrees: float = 0) -> np.ndarray:
    """MNIST digit (white on black) -> ink coverage in [0, 1] at `size` px, slightly rotated."""
    image = Image.fromarray(digit).resize((size, size), Image.Resampling.BICUBIC)
    if degrees:
        image = image.rotate(degrees, resample=Image.Resampling.BICUBIC)
    image = image.filter(ImageFilter.GaussianBlur(radius=size / 280))
    return np.asarray(image, dtype=np.float32) / 255.0


def _place(ink: np.ndarray, height: int, width: int, rng: np.random.Generator) -> np.ndarray:
    """Put ink somewhere off-centre on a larger sheet."""
    sheet = np.zeros((height, width), dtype=np.float32)
    top = int(rng.integers(0, height - ink.shape[0] + 1))
    left = int(rng.integers(0, width - ink.shape[1] + 1))
    sheet[top : top + ink.shape[0], left : left + ink.shape[1]] = ink
    return sheet


def encode(image: Image.Image, format: str, **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=format, **options)
    return buffer.getvalue()


def _photo(
    digit: np.ndarray, rng: np.random.Generator, scale: float = 1.0
) -> tuple[Image.Image, bytes, int]:
    """A phone photo's pixels as stored (rotated), its EXIF block, and a quality.

    1024×768 times ``scale`` (3.9375: a 12 MP phone's 4032×3024)."""
    height, width = round(768 * scale), round(1024 * scale)
    size = round(int(rng.integers(220, 500)) * scale)
    coverage = _place(_ink(digit, size, rng, rng.uniform(-6, 6)), height, width, rng)
    image = on_lit_paper(coverage, rng)
    orientation = int(rng.choice(list(STORED_AS)))
    if STORED_AS[orientation] is not None:
        image = image.transpose(STORED_AS[orientation])
    exif = Image.Exif()
    exif[ORIENTATION_TAG] = orientation
    return image, exif.tobytes(), int(rng.integers(70, 93))


def on_lit_paper(
    coverage: np.ndarray,
    rng: np.random.Generator,
    light: tuple[float, float] = (20, 60),
    noise: tuple[float, float] = (2, 6),
) -> Image.Image:
    """Ink coverage as a phone sees it: blue-black ink on tinted paper, light falling
    across it (a gradient of ``light`` grey levels), sensor noise; RGB."""
    height, width = coverage.shape
    rows, columns = np.mgrid[0:height, 0:width].astype(np.float32)
    angle = rng.uniform(0, 2 * np.pi)
    gradient = (np.cos(angle) * columns / width + np.sin(angle) * rows / height) * rng.uniform(
        *light
    )
    paper_tint = np.array([rng.uniform(200, 235), rng.uniform(195, 230), rng.uniform(185, 225)])
    paper = paper_tint[None, None, :] - gradient[..., None]
    ink_colour = np.array([rng.uniform(10, 50), rng.uniform(10, 50), rng.uniform(30, 90)])
    pixels = paper * (1 - coverage[..., None]) + ink_colour * coverage[..., None]
    pixels += rng.normal(0, rng.uniform(*noise), pixels.shape)
    return Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8), "RGB")


def photo(digit: np.ndarray, rng: np.random.Generator) -> tuple[bytes, str, str]:
    """A phone photo: dark ink on unevenly lit paper, JPEG, EXIF-rotated, big."""
    image, exif, quality = _photo(digit, rng)
    return encode(image, "JPEG", quality=quality, exif=exif), "photo.jpg", "image/jpeg"


# The encoders' qualities for the phone formats: files of the order of the photo
# kind's JPEGs (HEIC 0.8-2.4 times their size, AVIF 0.3-0.9 times, on four photos).
HEIC_QUALITY = 55
AVIF_QUALITY = 70


def heic(digit: np.ndarray, rng: np.random.Generator) -> tuple[bytes, str, str]:
    """The same photo as an iPhone saves it: HEIC, its orientation in the container.

    x265's fastest preset stands in for a phone's hardware encoder."""
    image, exif, _ = _photo(digit, rng)
    options = {"quality": HEIC_QUALITY, "enc_params": {"preset": "ultrafast"}}
    return encode(image, "HEIF", exif=exif, **options), "photo.heic", "image/heic"


def avif(digit: np.ndarray, rng: np.random.Generator) -> tuple[bytes, str, str]:
    """The same photo as AVIF, as recent Android phones and browsers save it."""
    image, exif, _ = _photo(digit, rng)
    content = encode(image, "AVIF", exif=exif, quality=AVIF_QUALITY, speed=8)
    return content, "photo.avif", "image/avif"


def canvas(digit: np.ndarray, rng: np.random.Generator) -> tuple[bytes, str, str]:
    """A browser canvas: dark strokes on a transparent background, PNG."""
    side = 280
    coverage = _place(_ink(digit, int(rng.integers(150, 240)), rng), side, side, rng)
    rgba = np.zeros((side, side, 4), dtype=np.uint8)
    rgba[..., :3] = 17
    rgba[..., 3] = np.clip(coverage * 255, 0, 255).astype(np.uint8)
    return encode(Image.fromarray(rgba, "RGBA"), "PNG"), "canvas.png", "image/png"


def scan(digit: np.ndarray, rng: np.random.Generator) -> tuple[bytes, str, str]:
    """A flatbed scan: black ink on white, grey or 1-bit, TIFF/PNG/BMP."""
    side = int(rng.integers(300, 700))
    coverage = _place(_ink(digit, int(side * rng.uniform(0.3, 0.7)), rng), side, side, rng)
    pixels = 250 - coverage * 235 + rng.normal(0, 2, coverage.shape)
    image = Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8), "L")
    if rng.random() < 0.3:
        image = image.convert("1")
    format = str(rng.choice(["TIFF", "PNG", "BMP"]))
    return encode(image, format), f"scan.{format.lower()}", f"image/{format.lower()}"


def screenshot(digit: np.ndarray, rng: np.random.Generator) -> tuple[bytes, str, str]:
    """A dark-mode app screenshot: light strokes on a dark grey background."""
    height, width = 300, 400
    coverage = _place(_ink(digit, int(rng.integers(120, 280)), rng), height, width, rng)
    background = np.array([30, 31, 36], dtype=np.float32)
    stroke = np.array([235, 235, 240], dtype=np.float32)
    pixels = background * (1 - coverage[..., None]) + stroke * coverage[..., None]
    image = Image.fromarray(pixels.astype(np.uint8), "RGB")
    return encode(image, "PNG"), "screenshot.png", "image/png"


def _formats(digit: np.ndarray, rng: np.random.Generator) -> Iterator[tuple[bytes, str, str]]:
    grey = Image.fromarray(digit).resize((112, 112), Image.Resampling.BICUBIC)
    inverted = Image.eval(grey, lambda value: 255 - value)
    yield encode(grey.convert("P"), "GIF"), "digit.gif", "image/gif"
    yield encode(inverted, "WEBP", quality=90), "digit.webp", "image/webp"
    yield encode(inverted.convert("RGB"), "BMP"), "digit.bmp", "image/bmp"
    wide = Image.fromarray((np.asarray(grey, dtype=np.uint16) * 257).astype(np.uint16))
    yield encode(wide, "PNG"), "digit16.png", "image/png"
    yield encode(inverted.convert("CMYK"), "JPEG", quality=90), "cmyk.jpg", "image/jpeg"
    yield encode(inverted.convert("CMYK"), "TIFF"), "cmyk.tiff", "image/tiff"
    alpha = np.asarray(grey)
    yield (
        encode(Image.fromarray(np.stack([np.zeros_like(alpha), alpha], -1), "LA"), "PNG"),
        "la.png",
        "image/png",
    )
    palette = inverted.convert("P")
    palette.info["transparency"] = int(np.asarray(palette)[0, 0])
    yield encode(palette, "PNG"), "palette.png", "image/png"


def formats(digit: np.ndarray, rng: np.random.Generator) -> tuple[bytes, str, str]:
    """Every other format and mode: GIF, WebP, BMP, 16-bit, CMYK, LA, palette+transparency."""
    choices = list(_formats(digit, rng))
    return choices[int(rng.integers(len(choices)))]


KINDS: dict[str, Callable[[np.ndarray, np.random.Generator], tuple[bytes, str, str]]] = {
    "photo": photo,
    "canvas": canvas,
    "scan": scan,
    "screenshot": screenshot,
    "formats": formats,
    "heic": heic,
    "avif": avif,
}


def held_out_digits(mnist: data.Mnist, seed: int = 1, validation_size: int = 5000) -> data.Split:
    """The digits ``model.train`` holds out for validation with the same split seed
    (the shipped model's, 1); a warning on standard error when the configured model's
    card names another: then some of these digits are its training digits."""
    from app.config import get_settings

    trained = split_seed(get_settings().model_path)
    if trained is not None and trained != seed:
        print(
            f"warning: the model held out the digits of split seed {trained}, not {seed}: "
            "some measured here are its training digits (retrain with --split-seed "
            f"{seed} to measure it on these)",
            file=sys.stderr,
        )
    return data.train_validation_split(mnist.train, validation_size, seed)[1]


def split_seed(model_path: Path) -> int | None:
    """The validation split's seed the model's card records (``app.inference.read_card``:
    only a card that describes this very file)."""
    from app.inference import file_sha256, read_card

    try:
        card = read_card(model_path, file_sha256(model_path))
        training = card["training"]
        return int(training.get("split_seed", training["seed"]))
    except (OSError, ValueError, KeyError, TypeError):
        return None


def uploads(
    digits: data.Split, count: int, seed: int = 0, kinds: Sequence[str] = tuple(KINDS)
) -> Iterator[Upload]:
    """`count` uploads, the kinds in turn, from the first digits of `digits`.

    The photo, heic and avif kinds draw the same random numbers, so one of them
    alone renders the same photos as another alone: its accuracy is paired."""
    rng = np.random.default_rng(seed)
    chosen = [(kind, KINDS[kind]) for kind in kinds]
    for index in range(count):
        kind, render = chosen[index % len(chosen)]
        content, filename, content_type = render(digits.images[index], rng)
        yield Upload(kind, int(digits.labels[index]), content, filename, content_type)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0, help="which random uploads to render")
    parser.add_argument("--data", help="folder with the MNIST .gz files (default: $MNIST_DIR)")
    parser.add_argument("--url", help="a running service; default: the service code in-process")
    parser.add_argument("--save", help="also write the rendered uploads into this folder")
    parser.add_argument(
        "--kinds", nargs="+", choices=list(KINDS), default=list(KINDS), help="default: all"
    )
    args = parser.parse_args(argv)
    digits = held_out_digits(data.load(args.data))

    if args.url:
        import httpx

        http = httpx.Client(base_url=args.url, timeout=30)

        def read(upload: Upload) -> int | None:
            files = {"file": (upload.filename, upload.content, upload.content_type)}
            response = http.post("/predict", files=files)
            return response.json()["digit"] if response.status_code == 200 else None
    else:
        from app.inference import load_configured
        from app.preprocessing import PreprocessingError, preprocess

        classifier = load_configured()

        def read(upload: Upload) -> int | None:
            try:
                return int(classifier.predict(preprocess(upload.content)).argmax())
            except PreprocessingError:
                return None

    totals: dict[str, list[int]] = {kind: [0, 0] for kind in args.kinds}
    started = time.perf_counter()
    for index, upload in enumerate(uploads(digits, args.count, args.seed, args.kinds)):
        if args.save:
            from pathlib import Path

            folder = Path(args.save)
            folder.mkdir(parents=True, exist_ok=True)
            (folder / f"{index:04d}-{upload.label}-{upload.filename}").write_bytes(upload.content)
        totals[upload.kind][0] += read(upload) == upload.label
        totals[upload.kind][1] += 1
    correct = sum(right for right, _ in totals.values())
    report = {
        "accuracy": correct / args.count,
        "count": args.count,
        "seconds": round(time.perf_counter() - started, 1),
        "by_kind": {kind: right / total for kind, (right, total) in totals.items() if total},
    }
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
