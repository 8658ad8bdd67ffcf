"""Whole numbers as people write them, composed from held-out digits.

Measures POST /read's segmentation and reading: numbers of 2–8 digits (or each of N,
``--length N``), each digit a validation digit that ``model.train`` holds out (never
the test set) or, with ``--source pendigits``, a digit of the 14 pendigits test
writers drawn with a round pen (``model.realdigits``; their 4s recorded without a
stem left out, kept with ``--source pendigits-as-recorded``), or, with ``--source
box16``, a held-out digit box-normalised to 16×16 as postal and form scans hold
digits (stretched to fill its box, every other one binarised), written with gaps
from wide to none, with or without touching pairs (strokes that meet or overlap), a
baseline that drifts, a slant, sometimes on ruled lines (the page turned by up to
3°), and rendered as a canvas drawing, a scan or a phone photo; with ``--boxes``,
one digit to a box of a form's row of boxes, scanned:

    python -m model.numbers [--count 600] [--source pendigits|box16] [--boxes] [--length 4]
        [--url http://127.0.0.1:8000]

String accuracy (every digit right, none missing or extra) by length, by kind
and by touching pairs. ``--speed`` times a 6-digit number in a 600×150 PNG
in-process instead.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw

from model import data, distort, printed, realdigits, uploads

HEIGHT = 96  # a digit's ink height on the sheet, before its own jitter
KINDS = ("canvas", "scan", "photo", "ruled")
SPACINGS = ("wide", "narrow", "touching")


@dataclass(frozen=True)
class Number:
    text: str
    kind: str
    spacing: str  # wide, narrow, or touching (one pair touches)
    content: bytes
    chosen: tuple[int, ...] = ()  # its digits' indices in the split it is composed from


def _digit_ink(image: np.ndarray, height: int, slant: float) -> np.ndarray:
    """An MNIST digit cropped to its ink, `height` px high, sheared by `slant`."""
    rows, columns = np.flatnonzero(image.any(axis=1)), np.flatnonzero(image.any(axis=0))
    crop = Image.fromarray(image[rows[0] : rows[-1] + 1, columns[0] : columns[-1] + 1])
    width = max(2, round(crop.width * height / crop.height))
    crop = crop.resize((width, height), Image.Resampling.BICUBIC)
    extra = round(abs(slant) * height)
    # Shear: x' = x + slant × (height - y), the top leaning right for slant > 0.
    offset = -slant * height if slant > 0 else 0.0
    sheared = crop.transform(
        (width + extra, height),
        Image.Transform.AFFINE,
        (1, slant, offset, 0, 1, 0),
        resample=Image.Resampling.BICUBIC,
    )
    return np.asarray(sheared, dtype=np.float32) / 255.0


def _touches(sheet: np.ndarray, ink: np.ndarray, top: int, left: int) -> bool:
    region = sheet[top : top + ink.shape[0], left : left + ink.shape[1]]
    return bool(((region > 0.5) & (ink > 0.5)).any())


def compose(
    images: list[np.ndarray], spacing: str, rng: np.random.Generator
) -> tuple[np.ndarray, int]:
    """Ink coverage in [0, 1] of the digits written left to right, and the baseline row."""
    sheet, baseline, _ = placed(images, spacing, rng)
    return sheet, baseline


def placed(
    images: list[np.ndarray], spacing: str, rng: np.random.Generator, overlap: float = 0.0
) -> tuple[np.ndarray, int, list[tuple[int, int, np.ndarray]]]:
    """``compose``'s sheet and baseline, and where each digit went: its ink's top
    row, left column and coverage, on the sheet. A touching pair overlaps by
    ``overlap`` of the second digit's width more."""
    slant = rng.uniform(-0.15, 0.3)
    drift = rng.uniform(-0.06, 0.06)  # of a digit's height, per digit
    inks = [_digit_ink(image, round(HEIGHT * rng.uniform(0.85, 1.1)), slant) for image in images]
    touching = int(rng.integers(len(images) - 1)) if spacing == "touching" else -1
    margin = HEIGHT
    width = sum(ink.shape[1] for ink in inks) + len(inks) * HEIGHT + 2 * margin
    height = 3 * HEIGHT
    sheet = np.zeros((height, width), dtype=np.float32)
    baseline = 2 * HEIGHT
    left = margin
    places = []
    for index, ink in enumerate(inks):
        top = round(baseline + drift * HEIGHT * index + rng.normal(0, 2)) - ink.shape[0]
        if index:
            if index - 1 == touching:
                # Slide back until the strokes meet, then a little more: touching or overlapping.
                while left > margin and not _touches(sheet, ink, top, left):
                    left -= 2
                left -= int(rng.integers(0, max(1, HEIGHT // 12)))
                if overlap:
                    left = max(margin, left - round(overlap * ink.shape[1]))
            elif spacing == "wide":
                left += round(HEIGHT * rng.uniform(0.25, 0.8))
            else:
                left += round(HEIGHT * rng.uniform(0.04, 0.2))
                # Close, never touching: move right while the strokes meet.
                while _touches(sheet, ink, top, left):
                    left += 2
        region = sheet[top : top + ink.shape[0], left : left + ink.shape[1]]
        np.maximum(region, ink, out=region)
        places.append((top, left, ink))
        left += ink.shape[1]
    columns = np.flatnonzero(sheet.any(axis=0))
    first = max(0, columns[0] - margin // 2)
    sheet = sheet[:, first : columns[-1] + margin // 2]
    return sheet, baseline, [(top, left - first, ink) for top, left, ink in places]


def _paper(
    coverage: np.ndarray, rng: np.random.Generator, paper: float | np.ndarray = 245.0
) -> np.ndarray:
    ink = rng.uniform(15, 60)
    return paper * (1 - coverage) + ink * coverage + rng.normal(0, 2, coverage.shape)


def render(
    coverage: np.ndarray, baseline: int, kind: str, rng: np.random.Generator, rise: float = 0.0
) -> bytes:
    """The written number as an upload of one of KINDS; ruled paper's lines rise by
    ``rise`` rows a column (the page turned)."""
    if kind == "canvas":  # dark strokes on transparency, PNG
        rgba = np.zeros((*coverage.shape, 4), dtype=np.uint8)
        rgba[..., :3] = 17
        rgba[..., 3] = np.clip(coverage * 255, 0, 255).astype(np.uint8)
        return uploads.encode(Image.fromarray(rgba, "RGBA"), "PNG")
    if kind == "ruled":  # ruled paper, turned a little: the baseline and the line above
        pixels = _paper(coverage, rng)
        height, width = pixels.shape
        columns = np.arange(width)
        drift = rise * (columns - width / 2)
        for row in (baseline + int(rng.integers(1, 6)), baseline - int(1.6 * HEIGHT)):
            if not 0 <= row < height - 3:
                continue
            level = rng.uniform(120, 170)
            for rows in np.round(row + drift).astype(np.intp) + np.arange(3)[:, None]:
                inside = (rows >= 0) & (rows < height)
                at = (rows[inside], columns[inside])
                pixels[at] = np.minimum(pixels[at], level)
        image = Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8), "L")
        return uploads.encode(image, "PNG")
    if kind == "scan":
        image = Image.fromarray(np.clip(_paper(coverage, rng), 0, 255).astype(np.uint8), "L")
        return uploads.encode(image, "PNG")
    # A phone photo: uneven light on tinted paper, blue ink, JPEG, EXIF-rotated.
    height, width = coverage.shape
    image = uploads.on_lit_paper(coverage, rng, light=(10, 40), noise=(2, 5))
    image = image.resize((width * 2, height * 2), Image.Resampling.BICUBIC)
    orientation = int(rng.choice(list(uploads.STORED_AS)))
    if uploads.STORED_AS[orientation] is not None:
        image = image.transpose(uploads.STORED_AS[orientation])
    exif = Image.Exif()
    exif[uploads.ORIENTATION_TAG] = orientation
    return uploads.encode(image, "JPEG", quality=int(rng.integers(75, 93)), exif=exif)


def numbers(
    digits: data.Split, count: int, seed: int = 0, length: int | None = None
) -> Iterator[Number]:
    """`count` numbers of 2–8 digits (or each of ``length``), kinds and spacings in turn."""
    rng = np.random.default_rng(seed)
    turns = np.random.default_rng((seed, 1))  # apart: the numbers stay those of before
    for index in range(count):
        rise = printed.turned(turns)
        drawn = int(rng.integers(2, 9))  # drawn either way: the default numbers stay
        chosen = rng.integers(0, len(digits.labels), length or drawn)
        kind = KINDS[index % len(KINDS)]
        spacing = SPACINGS[(index // len(KINDS)) % len(SPACINGS)]
        coverage, baseline = compose([digits.images[i] for i in chosen], spacing, rng)
        text = "".join(str(int(digits.labels[i])) for i in chosen)
        content = render(coverage, baseline, kind, rng, rise)
        yield Number(text, kind, spacing, content, tuple(int(i) for i in chosen))


def in_boxes(images: list[np.ndarray], rng: np.random.Generator) -> np.ndarray:
    """The digits written one to a box of a form's row of boxes (a comb: a postcode,
    a date), scanned: grey levels, the boxes' lines 1–2 px, printed grey or black."""
    cell = round(HEIGHT * rng.uniform(0.9, 1.3))
    tall = round(cell * rng.uniform(1.1, 1.4))
    margin = HEIGHT // 4
    width, height = cell * len(images) + 2 * margin, tall + 2 * margin
    coverage = np.zeros((height, width), dtype=np.float32)
    lines = Image.new("L", (width, height), 0)
    thickness = int(rng.integers(1, 3))
    for index, image in enumerate(images):
        left = margin + index * cell
        box = (left, margin, left + cell, margin + tall)
        ImageDraw.Draw(lines).rectangle(box, outline=255, width=thickness)
        ink = _digit_ink(image, round(tall * rng.uniform(0.6, 0.8)), rng.uniform(-0.1, 0.2))
        top = margin + (tall - ink.shape[0]) // 2 + int(rng.integers(-4, 5))
        column = left + max(0, (cell - ink.shape[1]) // 2 + int(rng.integers(-4, 5)))
        region = coverage[top : top + ink.shape[0], column : column + ink.shape[1]]
        np.maximum(region, ink[: region.shape[0], : region.shape[1]], out=region)
    printed = np.asarray(lines, dtype=np.float32) / 255.0
    pixels = _paper(coverage, rng, paper=245.0 - (245.0 - rng.uniform(40, 170)) * printed)
    return np.clip(pixels, 0, 255).astype(np.uint8)


def boxed_numbers(digits: data.Split, count: int, seed: int = 0) -> Iterator[Number]:
    """`count` numbers of 2–8 digits written in a form's boxes (``in_boxes``)."""
    rng = np.random.default_rng(seed)
    for _ in range(count):
        chosen = rng.integers(0, len(digits.labels), int(rng.integers(2, 9)))
        pixels = in_boxes([digits.images[i] for i in chosen], rng)
        text = "".join(str(int(digits.labels[i])) for i in chosen)
        content = uploads.encode(Image.fromarray(pixels), "PNG")
        yield Number(text, "form boxes", "boxed", content, tuple(int(i) for i in chosen))


def pen_digits(count: int = 3000, as_recorded: bool = False) -> data.Split:
    """The first ``count`` digits of the pendigits test writers, drawn with a round
    pen as white ink on black, as MNIST stores its digits; unless ``as_recorded``,
    without the 4s the file holds without their stem (``realdigits.stemless``)."""
    sets = realdigits.load()
    drawn = (sets.pen_test if as_recorded else sets.pen_test_legible)[:count]
    images = [np.rint(realdigits.draw(digit, side=112, pen=8.0) * 255) for digit in drawn]
    labels = np.array([digit.label for digit in drawn], dtype=np.uint8)
    return data.Split(np.stack(images).astype(np.uint8), labels)


def box_digit(image: np.ndarray, binary: bool) -> np.ndarray:
    """A digit (uint8, ink bright) box-normalised to 16×16, as postal and form scans
    hold it: stretched to fill the box; binarised if ``binary``."""
    box = distort.box_normalised(image.astype(np.float32) / 255.0, 16)
    return np.rint((distort.binarised(box, 0.35) if binary else box) * 255).astype(np.uint8)


def box_digits(digits: data.Split, count: int = 3000) -> data.Split:
    """The first ``count`` digits box-normalised (``box_digit``), every other one
    binarised."""
    images = [box_digit(image, index % 2 == 1) for index, image in enumerate(digits.images[:count])]
    return data.Split(np.stack(images), digits.labels[:count])


def read_alone(digits: data.Split) -> np.ndarray:
    """Whether the service reads each digit right sent alone as a PNG (``/predict``'s
    path in-process: ``model.world.service_reader``; refused counts as wrong). A number
    is read no better than its digits are alone."""
    from model import world

    read = world.service_reader()
    right = np.zeros(len(digits.labels), dtype=bool)
    for start in range(0, len(digits.labels), 256):
        chunk = range(start, min(start + 256, len(digits.labels)))
        readings = read([world.png(digits.images[i]) for i in chunk])
        for index, reading in zip(chunk, readings, strict=True):
            answer = None if reading.refused else int(np.argmax(reading.probabilities))
            right[index] = answer == int(digits.labels[index])
    return right


def not_digits(count: int, seed: int, reject: bool = True) -> dict[str, str]:
    """The non-digits ``model.world`` measures ``/predict`` with (other fonts and seeds
    than training's), ``count`` of each kind but its several digits (a number, to
    /read), read in-process: the share /read answers with a number, per kind."""
    from model import augment, world

    read = in_process_reader(reject=reject)
    answered: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    blank = np.zeros((1, 28, 28), dtype=np.uint8)  # its several digits are not drawn
    for sample in world.not_digits(count, seed, blank, augment.fonts(training=False)):
        if sample.kind == "several digits":
            break
        answered[sample.kind][0] += read(sample.content) is not None
        answered[sample.kind][1] += 1
    return {kind: f"{a / n:.3f} of {n}" for kind, (a, n) in answered.items()}


def service_predictor(classifier=None):
    """The service's ``app.predictor.Predictor``, in-process: ``classifier`` (an
    ``app.inference.DigitClassifier``; default: the configured one) and the pair reader
    shipped beside the configured model (``app.pairs``)."""
    from app import pairs
    from app.config import get_settings
    from app.inference import load_configured
    from app.predictor import Predictor

    settings = get_settings()
    pair_reader = pairs.load(settings.model_path.parent)
    return Predictor(classifier or load_configured(), settings, pair_reader=pair_reader)


def in_process_reader(classifier=None, reject: bool = True) -> Callable[[bytes], str | None]:
    """The service's own reading, without HTTP: ``Predictor.read`` of
    ``service_predictor(classifier)``, each upload on an event loop of its own in a
    thread of its own (the caller may be on one; nothing is left running when it
    returns: a process that forks later, as training's rendering does, forks no idle
    loop); None where /read answers 422 (no digit, more than MAX_DIGITS, or, if
    ``reject``, digits that do not look like digits)."""
    import asyncio
    from concurrent.futures import ThreadPoolExecutor

    from app import preprocessing

    predictor = service_predictor(classifier)

    async def digits(content: bytes) -> str | None:
        try:
            reading = await predictor.read(content, reject)
        except preprocessing.PreprocessingError:  # refusals and TooManyDigitsError too
            return None
        return "".join(str(digit.digit) for digit in reading.digits)

    def read(content: bytes) -> str | None:
        with ThreadPoolExecutor(1) as thread:
            return thread.submit(asyncio.run, digits(content)).result()

    return read


def six_digit_png(digits: data.Split, rng: np.random.Generator) -> bytes:
    """A 6-digit number written dark on white, scaled to fit a 600×150 grey PNG
    (its shape kept: squeezed, its digits would be no digits)."""
    chosen = rng.integers(0, len(digits.labels), 6)
    coverage, _ = compose([digits.images[i] for i in chosen], "narrow", rng)
    image = Image.fromarray(np.clip(255 - coverage * 240, 0, 255).astype(np.uint8), "L")
    image.thumbnail((600, 150), Image.Resampling.BOX)
    sheet = Image.new("L", (600, 150), 255)
    sheet.paste(image, ((600 - image.width) // 2, (150 - image.height) // 2))
    return uploads.encode(sheet, "PNG")


def speed(digits: data.Split, repeats: int = 200) -> dict:
    """Milliseconds to read a 6-digit number in a 600×150 PNG, in-process (``Predictor.read``
    awaited on an event loop, as a request awaits it), with the malloc settings and the
    frozen startup heap of a service worker (``app.memory``); and what of it the hop to a
    worker thread and back costs (the network's work runs off the event loop)."""
    import asyncio

    from starlette.concurrency import run_in_threadpool

    from app import memory

    memory.tune_malloc()
    rng = np.random.default_rng(1)
    predictor = service_predictor()
    samples = [six_digit_png(digits, rng) for _ in range(20)]

    async def timed() -> tuple[list[float], list[float]]:
        await predictor.read(samples[0])  # warm up
        memory.freeze_startup_objects()  # what loading left, kept out of the timed collections
        times, hops = [], []
        for index in range(repeats):
            started = time.perf_counter()
            await predictor.read(samples[index % len(samples)])
            times.append(time.perf_counter() - started)
            started = time.perf_counter()
            await run_in_threadpool(int)
            hops.append(time.perf_counter() - started)
        return times, hops

    times, hops = asyncio.run(timed())
    return {
        "number": "6 digits, 600x150 PNG, in-process",
        "median_ms": round(1000 * float(np.median(times)), 2),
        "p90_ms": round(1000 * float(np.quantile(times, 0.9)), 2),
        "thread_hop_ms": round(1000 * float(np.median(hops)), 2),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=600)
    parser.add_argument("--seed", type=int, default=0, help="which random numbers to compose")
    parser.add_argument("--data", help="folder with the MNIST .gz files (default: $MNIST_DIR)")
    parser.add_argument("--url", help="a running service; default: the service code in-process")
    parser.add_argument("--save", help="also write the rendered numbers into this folder")
    parser.add_argument("--speed", action="store_true", help="time the in-process reading")
    sources = ("mnist", "pendigits", "pendigits-as-recorded", "box16")
    parser.add_argument("--source", choices=sources, default="mnist")
    parser.add_argument("--boxes", action="store_true", help="written in a form's boxes")
    parser.add_argument("--length", type=int, help="every number this many digits (default 2-8)")
    parser.add_argument(
        "--not-digits",
        action="store_true",
        help="instead, the share of model.world's non-digits /read answers, per kind",
    )
    parser.add_argument(
        "--no-reject",
        action="store_true",
        help="read as /read?reject=false does: digits that do not look like digits answered",
    )
    parser.add_argument(
        "--alone",
        action="store_true",
        help="also the share of numbers whose every digit is read right sent alone",
    )
    args = parser.parse_args(argv)
    if args.source.startswith("pendigits"):
        digits = pen_digits(as_recorded=args.source == "pendigits-as-recorded")
    else:
        digits = uploads.held_out_digits(data.load(args.data))
        if args.source == "box16":
            digits = box_digits(digits)
    if args.speed:
        print(json.dumps(speed(digits), indent=2))
        return 0
    if args.not_digits:
        print(json.dumps(not_digits(args.count, args.seed, not args.no_reject), indent=2))
        return 0

    if args.url:
        import httpx

        http = httpx.Client(base_url=args.url, timeout=30)

        def read(content: bytes) -> str | None:
            params = {"reject": "false"} if args.no_reject else {}
            response = http.post("/read", files={"file": ("number", content)}, params=params)
            return response.json()["number"] if response.status_code == 200 else None
    else:
        read = in_process_reader(reject=not args.no_reject)

    # Per row: numbers read right, numbers, numbers whose every digit reads right alone.
    totals: dict[str, dict[str, list[int]]] = defaultdict(lambda: defaultdict(lambda: [0, 0, 0]))
    alone = read_alone(digits) if args.alone else None
    refused, started = 0, time.perf_counter()
    if args.boxes:
        written = boxed_numbers(digits, args.count, args.seed)
    else:
        written = numbers(digits, args.count, args.seed, args.length)
    for index, number in enumerate(written):
        if args.save:
            from pathlib import Path

            folder = Path(args.save)
            folder.mkdir(parents=True, exist_ok=True)
            name = f"{index:04d}-{number.text}-{number.kind}-{number.spacing}"
            (folder / name).write_bytes(number.content)
        got = read(number.content)
        right, refused = got == number.text, refused + (got is None)
        length = f"{len(number.text)} digits"
        for table, key in (
            ("by_length", length),
            ("by_kind", number.kind),
            ("by_spacing", number.spacing),
            ("by_length_and_spacing", f"{length}, {number.spacing}"),
        ):
            row = totals[table][key]
            row[0] += right
            row[1] += 1
            row[2] += alone is not None and bool(alone[list(number.chosen)].all())
    report: dict = {
        "source": args.source,
        "count": args.count,
        "seconds": round(time.perf_counter() - started, 1),
        "accuracy": sum(r for r, *_ in totals["by_kind"].values()) / args.count,
        "refused": refused / args.count,
    }
    for table, rows in totals.items():
        report[table] = {
            key: f"{r / n:.3f} of {n}" + (f", every digit alone {a / n:.3f}" if args.alone else "")
            for key, (r, n, a) in sorted(rows.items())
        }
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
