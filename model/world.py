"""The project's measure of handwriting in the world, not shaped like MNIST.

    python -m model.world [--count 500] [--realdigits DIR] [--data DIR] [--json FILE]
    python -m model.world --pen-writers    # every pendigits test digit, per writer
    python -m model.world --second-look    # MNIST test read with and without it

Two families of uploads, each sent as a PNG through the service's own code:

- **rendered** from MNIST validation digits (never the test set): tight crops whose ink
  touches 1–4 edges, crops cut from a line of writing (the next digit's strokes cut by
  the left or right edge), faint pencil photos in uneven light, box-normalised 16×16 digits
  (stretched, binarised or grey; at 16 px or enlarged), marker and hairline strokes,
  slanted writing, digits on squared or ruled paper or in a form's box (``model.printed``),
  cropped from an old register's page (``model.aged``); the 7s crossed (``model.habits``);
- **real** writers MNIST never saw (``model.realdigits``): pendigits' test writers
  drawn like the page's canvas (but the 4s recorded without their stem), optdigits'
  validation bitmaps, and scikit-learn's ``load_digits`` (optdigits' other 13
  writers, 8×8) in both polarities, with and without a margin. ``load_digits`` is
  for evaluation only, never training.

Also the upload kinds of ``model.uploads``, MNIST test digits as PNG files, and non-digits
kept apart from training (``not_digits``). Prints, per kind of digit, the share read
correctly, the share refused (422) and the expected calibration error; per kind of
non-digit, the share answered 200; and the digit score's AUROC.
"""

from __future__ import annotations

import argparse
import io
import itertools
import json
import sys
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from app import calibration
from model import aged, data, habits, printed, realdigits
from model import distort as d

Render = Callable[[np.ndarray, np.random.Generator], np.ndarray]


@dataclass(frozen=True)
class Sample:
    kind: str
    label: int
    content: bytes


def png(pixels: np.ndarray, mode: str = "L") -> bytes:
    Image.fromarray(pixels, mode).save(buffer := io.BytesIO(), format="PNG")
    return buffer.getvalue()


def tight_crop(digit: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Cut close around the ink: 1 to 4 edges touch it, the others keep a margin."""
    ink = d.cropped(d.mnist_ink(digit, int(rng.integers(56, 160))), level=0.2)
    touching = rng.permutation(4)[: int(rng.integers(1, 5))]
    margins = [0 if side in touching else int(rng.integers(3, 12)) for side in range(4)]
    return d.on_paper(d.padded(ink, *margins), dark_ink=bool(rng.random() < 0.7))


def faint_photo(digit: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A pencil digit photographed in a lamp's light: 25–60 grey levels of ink on
    paper whose light varies by up to 40 levels across the page, sensor noise."""
    side = int(rng.integers(60, 300))
    ink = d.padded(d.mnist_ink(digit, side), *(int(m) for m in rng.integers(0, side // 2 + 1, 4)))
    rows, columns = np.mgrid[0 : ink.shape[0], 0 : ink.shape[1]].astype(np.float32)
    angle, scale = rng.uniform(0, 2 * np.pi), rng.uniform(0, 40) / max(ink.shape)
    paper = rng.uniform(150, 230) - scale * (np.cos(angle) * columns + np.sin(angle) * rows)
    pixels = paper - rng.uniform(25, 60) * ink + rng.normal(0, rng.uniform(1, 4), ink.shape)
    return np.clip(pixels, 0, 255).astype(np.uint8)


def cut_from_line(digit: np.ndarray, neighbour: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Cut tightly from a line of writing: the next digit's strokes, cut by the edge."""
    side = int(rng.integers(56, 160))
    ink, other = (d.cropped(d.mnist_ink(x, side), level=0.2) for x in (digit, neighbour))
    shown = int(rng.integers(2, max(3, other.shape[1] // 3) + 1))  # its columns in the crop
    gap = int(rng.integers(2, side // 12 + 1))
    height = max(ink.shape[0], other.shape[0]) + int(rng.integers(0, side // 8 + 1))
    sheet = np.zeros((height, ink.shape[1] + gap + shown), dtype=np.float32)
    left = bool(rng.random() < 0.5)  # which side the neighbour is on
    part = other[:, -shown:] if left else other[:, :shown]
    columns = (shown + gap, 0) if left else (0, ink.shape[1] + gap)
    for x, column in zip((ink, part), columns, strict=True):
        row = int(rng.integers(0, height - x.shape[0] + 1))
        sheet[row : row + x.shape[0], column : column + x.shape[1]] = x
    margin = int(rng.integers(0, 12))  # the side away from the neighbour
    sheet = d.padded(sheet, 0, 0, *((0, margin) if left else (margin, 0)))
    return d.on_paper(sheet, dark_ink=bool(rng.random() < 0.7))


def _box16(digit: np.ndarray) -> np.ndarray:
    return d.box_normalised(digit.astype(np.float32) / 255.0, 16)


RENDERED: dict[str, Render] = {
    "tight crop": tight_crop,
    "faint photo": faint_photo,
    "16x16 grey": lambda digit, rng: d.on_paper(_box16(digit)),
    "16x16 binary": lambda digit, rng: d.on_paper(d.binarised(_box16(digit), 0.35)),
    "16x16 x4 nearest": lambda digit, rng: d.on_paper(d.enlarged(_box16(digit), 4)),
    "16x16 x4 bilinear": lambda digit, rng: d.on_paper(
        d.enlarged(_box16(digit), 4, Image.Resampling.BILINEAR)
    ),
    "marker": lambda digit, rng: d.on_paper(
        d.padded(d.restroked(d.mnist_ink(digit), int(rng.integers(6, 12))), 8, 8, 8, 8)
    ),
    "hairline": lambda digit, rng: d.on_paper(d.restroked(d.mnist_ink(digit), -20)),
    "slanted": lambda digit, rng: d.on_paper(
        d.affine(
            d.mnist_ink(digit),
            rng.uniform(-15, 15),
            rng.choice([-1, 1]) * rng.uniform(0.25, 0.45),
            pad=24,
        )
    ),
    **printed.RENDERED,
}


def uploaded(digits: data.Split, count: int, seed: int) -> Iterator[Sample]:
    """``model.uploads``' kinds: photos, canvas drawings, scans, screenshots, formats."""
    from model import uploads

    # HEIC and AVIF take a second each to encode here; tests/app/test_heif.py pairs
    # them with the same photos as JPEG.
    kinds = [kind for kind in uploads.KINDS if kind not in ("heic", "avif")]
    for upload in uploads.uploads(digits, count * len(kinds), seed, kinds=kinds):
        yield Sample(f"upload: {upload.kind}", upload.label, upload.content)


def mnist_test(mnist: data.Mnist, count: int) -> Iterator[Sample]:
    """MNIST test digits as PNG files (final evaluation only: nothing is fitted on them)."""
    for image, label in zip(mnist.test.images[:count], mnist.test.labels[:count], strict=True):
        yield Sample("MNIST test PNG", int(label), png(image))


def rendered(digits: data.Split, count: int, seed: int) -> Iterator[Sample]:
    rng = np.random.default_rng(seed)
    total = min(count, len(digits.labels))
    yield from _drawn(digits, total, RENDERED, rng)
    for index in range(total):  # the next digit of the split is the neighbour
        grey = cut_from_line(digits.images[index], digits.images[(index + 1) % total], rng)
        yield Sample("cut from a line", int(digits.labels[index]), png(grey))
    # Kinds added since draw from a generator of their own: the others' draws stay.
    yield from _drawn(digits, total, aged.RENDERED, np.random.default_rng([seed, 1]))
    yield from _drawn(habits.sevens(digits), count, habits.RENDERED, np.random.default_rng(seed))


def _drawn(digits: data.Split, total: int, kinds: dict[str, Render], rng) -> Iterator[Sample]:
    for kind, render in kinds.items():
        for index in range(min(total, len(digits.labels))):
            yield Sample(kind, int(digits.labels[index]), png(render(digits.images[index], rng)))


def _pen_samples(pen: list[realdigits.PenDigit], count: int) -> Iterator[Sample]:
    step = max(1, len(pen) // count)
    for digit in pen[::step][:count]:
        coverage = realdigits.draw(digit)
        yield Sample("pendigits canvas on white", digit.label, png(d.on_paper(coverage)))
        rgba = np.zeros((*coverage.shape, 4), dtype=np.uint8)
        rgba[..., :3] = 17
        rgba[..., 3] = np.rint(coverage * 255).astype(np.uint8)
        yield Sample("pendigits canvas transparent", digit.label, png(rgba, "RGBA"))


def pen_writers(
    pen: list[realdigits.PenDigit], read: Callable[[list[bytes]], list[Reading]]
) -> dict[str, dict]:
    """Every pendigits digit drawn on white as the page's canvas draws it (the kind
    "pendigits canvas on white"), read per writer (and for all of them): how many,
    the share read right, the share refused, and the commonest misreadings ("4>5":
    a 4 read as 5); last, all writers but the 4s recorded without their stem
    (``realdigits.stemless``)."""
    by_writer: dict[int | None, list[realdigits.PenDigit]] = {}
    for digit in pen:
        by_writer.setdefault(digit.writer, []).append(digit)
    report, everyone, legible = {}, _Tally(), _Tally()
    for writer, digits in sorted(by_writer.items(), key=lambda item: item[0] or 0):
        tally = _Tally()
        for start in range(0, len(digits), 256):
            chunk = digits[start : start + 256]
            contents = [png(d.on_paper(realdigits.draw(digit))) for digit in chunk]
            for digit, reading in zip(chunk, read(contents), strict=True):
                read_as = None if reading.refused else int(np.argmax(reading.probabilities))
                tallies = (tally, everyone) + (() if realdigits.stemless(digit) else (legible,))
                for each in tallies:
                    each.add(digit.label, read_as)
        report[f"writer {writer}"] = tally.row()
    report["all writers"] = everyone.row()
    report["all, stemless 4s left out"] = legible.row()
    return report


@dataclass
class _Tally:
    """Digits read, refused and misread ("4>5": a 4 read as 5)."""

    count: int = 0
    refused: int = 0
    misread: Counter = field(default_factory=Counter)

    def add(self, label: int, read_as: int | None) -> None:
        self.count += 1
        if read_as is None:
            self.refused += 1
        elif read_as != label:
            self.misread[f"{label}>{read_as}"] += 1

    def row(self) -> dict:
        return {
            "count": self.count,
            "accuracy": round(1 - (self.refused + sum(self.misread.values())) / self.count, 4),
            "refused": round(self.refused / self.count, 4),
            "misread": dict(self.misread.most_common(4)),
        }


def _bitmap_samples(name: str, images, labels, count: int) -> Iterator[Sample]:
    """Bitmaps (ink 1 or grey levels up to their max) in every presentation."""
    step = max(1, len(labels) // count)
    for image, label in zip(images[::step][:count], labels[::step][:count], strict=True):
        ink = image.astype(np.float32) / float(image.max() or 1)
        factor = 4
        for margin in (False, True):
            pad = ink.shape[0] // 4 if margin else 0
            framed = d.padded(ink, pad, pad, pad, pad)
            suffix = ", margin" if margin else ""
            for dark_ink in (True, False):
                polarity = "dark on light" if dark_ink else "light on dark"
                pixels = png(d.on_paper(framed, dark_ink))
                yield Sample(f"{name}, {polarity}{suffix}", int(label), pixels)
            big = d.enlarged(framed, factor, Image.Resampling.BILINEAR)
            yield Sample(f"{name} x{factor} bilinear{suffix}", int(label), png(d.on_paper(big)))


def real(sets: realdigits.RealDigits, count: int) -> Iterator[Sample]:
    yield from _pen_samples(sets.pen_test_legible, count)
    opt = sets.opt_validation
    yield from _bitmap_samples("optdigits 32x32", opt.images, opt.labels, count)
    try:
        from sklearn.datasets import load_digits
    except ImportError:  # the train extra installs it
        print("scikit-learn not installed: load_digits not measured", file=sys.stderr)
        return
    small = load_digits()
    yield from _bitmap_samples("load_digits 8x8", small.images, small.target, count)


NOT_A_DIGIT = 10  # the label of samples that are no digit


def not_digits(
    count: int, seed: int, mnist_digits: np.ndarray, fonts: list[Path]
) -> Iterator[Sample]:
    """Non-digits kept apart from training: ``fonts`` of other families
    (``augment.fonts(training=False)``), other seeds; letters and symbols only where
    the font has them (a box is no letter). As in training, one that normalises to one
    solid upright bar is drawn again: that is a 1."""
    from model import augment

    kinds = {
        "letters and symbols (other fonts)": lambda rng: augment.glyph(rng, fonts, drawn_only=True),
        "scribbles": augment.scribble,
        "textures": augment.texture,
        "scenes (generated photos)": augment.scene,
        "pages of text (other fonts)": lambda rng: augment.text_page(rng, fonts),
        "several digits": lambda rng: augment.several_digits(mnist_digits, rng),
    }
    for offset, (kind, render) in enumerate(kinds.items()):
        rng = np.random.default_rng(10_000 + seed * 100 + offset)
        drawn = 0
        while drawn < count:
            grey = render(rng)
            seen = augment.network_input(grey)
            if seen is not None and augment.one_upright_bar(seen):
                continue  # a 1 to any reader, as in training
            drawn += 1
            yield Sample(kind, NOT_A_DIGIT, png(grey))


@dataclass(frozen=True)
class Reading:
    probabilities: np.ndarray | None  # (10,), None when preprocessing refused the image
    score: float  # the digit score; 0 when preprocessing refused the image
    refused: bool  # 422: by preprocessing or by the not-a-digit threshold


def _row(group: list[Sample], readings: list[Reading]) -> dict:
    labels = np.array([sample.label for sample in group])
    refused = np.array([reading.refused for reading in readings])
    if labels[0] == NOT_A_DIGIT:
        return {"count": len(group), "answered": round(1 - float(refused.mean()), 4)}
    read = [i for i, reading in enumerate(readings) if reading.probabilities is not None]
    probabilities = np.stack([readings[i].probabilities for i in read])
    right = (probabilities.argmax(axis=1) == labels[read]) & ~refused[read]
    return {
        "count": len(group),
        "accuracy": round(float(right.sum()) / len(group), 4),
        "refused": round(float(refused.mean()), 4),
        "ece": round(calibration.expected_calibration_error(probabilities, labels[read]), 4),
    }


def measure(samples: Iterator[Sample], read: Callable[[list[bytes]], list[Reading]]) -> dict:
    """Per kind: for digits the share read right, refused, and the calibration
    error; for non-digits the share answered 200. Plus the digit score's AUROC
    between all digits and all non-digits."""
    by_kind: dict[str, list[Sample]] = {}
    for sample in samples:
        by_kind.setdefault(sample.kind, []).append(sample)
    report, scores = {}, {True: [], False: []}
    for kind, group in by_kind.items():
        readings = read([sample.content for sample in group])
        report[kind] = _row(group, readings)
        scores[group[0].label != NOT_A_DIGIT] += [reading.score for reading in readings]
    if scores[True] and scores[False]:
        report["auroc"] = round(auroc(np.array(scores[True]), np.array(scores[False])), 4)
    return report


def auroc(positives: np.ndarray, negatives: np.ndarray) -> float:
    """The chance a random positive scores above a random negative (ties count half)."""
    values = np.concatenate([positives, negatives])
    order = values.argsort(kind="stable")
    ranks = np.empty(len(values))
    ranks[order] = np.arange(1, len(values) + 1)
    for value in np.unique(values):  # average ranks of ties
        tied = values == value
        ranks[tied] = ranks[tied].mean()
    many, others = len(positives), len(negatives)
    return float((ranks[:many].sum() - many * (many + 1) / 2) / (many * others))


def service_reader(classifier=None) -> Callable[[list[bytes]], list[Reading]]:
    """The service's preprocessing, network and threshold, in-process: each upload read
    as ``/predict/batch`` reads it (``app.predictor.Predictor.predict_many``, run on an
    event loop of its own in a thread of its own: the caller may be on one)."""
    import asyncio
    from concurrent.futures import ThreadPoolExecutor

    from app.config import Settings
    from app.predictor import Predictor
    from app.preprocessing import PreprocessingError
    from app.rejection import refusal

    if classifier is None:
        from app.inference import load_configured

        classifier = load_configured()
    settings = Settings()

    def read(contents: list[bytes]) -> list[Reading]:
        predictor = Predictor(classifier, settings)  # its semaphore binds to one loop
        reading = predictor.predict_many(contents, reject=False)
        with ThreadPoolExecutor(1) as thread:
            results = thread.submit(asyncio.run, reading).result()
        readings = []
        for content, result in zip(contents, results, strict=True):
            if isinstance(result, PreprocessingError):
                readings.append(Reading(None, 0.0, True))
                continue
            score = result.digit_score
            why = refusal(content, score, classifier.reject_below, predictor.limits)
            readings.append(Reading(result.probabilities, score, why is not None))
        return readings

    return read


def second_look_on_mnist_test(mnist: data.Mnist, classifier=None) -> dict:
    """The whole MNIST test set as the network takes it (``model.evaluate``'s input),
    read by the network alone and with ``app.second_look``: accuracy, refused, the
    calibration error, and how many digits were looked at again."""
    from app import second_look
    from app.inference import load_configured
    from model.evaluate import as_network_input

    classifier = classifier or load_configured()
    inputs, labels = as_network_input(mnist.test.images), mnist.test.labels
    first = classifier.outputs(inputs)
    looked = [0]  # how many the second look took, as the service's metric hears it
    again = second_look.outputs(
        inputs, first, classifier.outputs, classifier.temperature, looked.append
    )
    report = {"count": len(labels), "looked at again": looked[-1]}
    for name, outputs in (("network alone", first), ("with the second look", again)):
        probabilities, scores = classifier.interpret(outputs)
        report[name] = {
            "accuracy": round(float((probabilities.argmax(axis=1) == labels).mean()), 5),
            "refused": round(float((scores < classifier.reject_below).mean()), 5),
            "ece": round(calibration.expected_calibration_error(probabilities, labels), 5),
        }
    return report


def markdown(report: dict) -> str:
    """The report as the tables docs/model.md shows."""
    lines = ["| kind | count | read right | refused | ECE |", "|---|---:|---:|---:|---:|"]
    others = ["| not a digit | count | answered 200 |", "|---|---:|---:|"]
    for kind, row in report.items():
        if kind == "auroc":
            continue
        if "answered" in row:
            others.append(f"| {kind} | {row['count']} | {row['answered']:.1%} |")
        else:
            lines.append(
                f"| {kind} | {row['count']} | {row['accuracy']:.2%} | {row['refused']:.2%} "
                f"| {row['ece']:.2%} |"
            )
    auroc = f"\nDigit score AUROC, digits against non-digits: {report.get('auroc', 0):.4f}\n"
    return "\n".join(lines) + "\n\n" + "\n".join(others) + "\n" + auroc


def print_report(report: dict) -> None:
    width = max(map(len, report))
    print(f"{'kind':<{width}}  count  accuracy  refused    ECE  | non-digits answered")
    for kind, row in report.items():
        if kind == "auroc":
            print(f"digit score AUROC, digits against non-digits: {row:.4f}")
        elif "answered" in row:
            print(f"{kind:<{width}}  {row['count']:5d}  {'':34}| {row['answered']:7.2%}")
        else:
            print(
                f"{kind:<{width}}  {row['count']:5d}  {row['accuracy']:8.2%}  "
                f"{row['refused']:7.2%}  {row['ece']:5.2%}"
            )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=500, help="digits per kind")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--data", help="folder with the MNIST .gz files (default: $MNIST_DIR)")
    parser.add_argument("--realdigits", help="folder with the UCI files ($REALDIGITS_DIR)")
    parser.add_argument("--json", help="also write the report here")
    parser.add_argument("--markdown", help="also write the report as Markdown tables here")
    parser.add_argument(
        "--pen-writers",
        action="store_true",
        help="only every pendigits test digit on a canvas, per writer",
    )
    parser.add_argument(
        "--second-look",
        action="store_true",
        help="only the MNIST test set, read with and without app.second_look",
    )
    args = parser.parse_args(argv)
    if args.second_look:
        print(json.dumps(second_look_on_mnist_test(data.load(args.data)), indent=2))
        return 0
    if args.pen_writers:
        report = pen_writers(realdigits.load(args.realdigits).pen_test, service_reader())
        for writer, row in report.items():
            misread = ", ".join(f"{pair} x{n}" for pair, n in row["misread"].items())
            print(
                f"{writer:<26} {row['count']:5d}  {row['accuracy']:7.2%}  "
                f"{row['refused']:6.2%}  {misread}"
            )
        return 0
    from model.augment import MissingFontsError, fonts
    from model.uploads import held_out_digits

    try:
        measuring_fonts = fonts(training=False)
    except MissingFontsError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    mnist = data.load(args.data)
    digits = held_out_digits(mnist)
    sets = realdigits.load(args.realdigits)
    read = service_reader()
    samples = itertools.chain(
        uploaded(digits, args.count, args.seed),
        rendered(digits, args.count, args.seed),
        real(sets, args.count),
        mnist_test(mnist, args.count),
        not_digits(args.count, args.seed, digits.images, measuring_fonts),
    )
    report = measure(samples, read)
    print_report(report)
    if args.markdown:
        with open(args.markdown, "w") as stream:
            stream.write(markdown(report))
    if args.json:
        with open(args.json, "w") as stream:
            json.dump(report, stream, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
