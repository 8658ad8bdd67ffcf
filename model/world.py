"""The project's measure of handwriting in the world, not shaped like MNIST.

    python -m model.world [--count 500] [--realdigits DIR] [--data DIR] [--json FILE]

Two families of uploads, each sent as a PNG through the service's own code:

- **rendered** from MNIST validation digits (never the test set): tight crops whose
  ink touches 1–4 edges, box-normalised 16×16 digits (stretched, binarised or grey;
  at 16 px or enlarged), marker and hairline strokes, slanted writing;
- **real** writers MNIST never saw (``model.realdigits``): pendigits' test writers
  drawn like the page's canvas, optdigits' validation bitmaps, and scikit-learn's
  ``load_digits`` (optdigits' other 13 writers, 8×8) in both polarities, with and
  without a margin. ``load_digits`` is for evaluation only, never training.

Prints, per kind, the share read correctly and the share refused (422).
"""

from __future__ import annotations

import argparse
import io
import json
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np
from PIL import Image

from model import data, realdigits
from model import distort as d

Render = Callable[[np.ndarray, np.random.Generator], np.ndarray]


@dataclass(frozen=True)
class Sample:
    kind: str
    label: int
    content: bytes


def png(pixels: np.ndarray, mode: str = "L") -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(pixels, mode).save(buffer, format="PNG")
    return buffer.getvalue()


def _mnist_ink(digit: np.ndarray, size: int = 112) -> np.ndarray:
    return d.resized(digit.astype(np.float32) / 255.0, size, size)


def tight_crop(digit: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Cut close around the ink: 1 to 4 edges touch it, the others keep a margin."""
    ink = d.cropped(_mnist_ink(digit, int(rng.integers(56, 160))), level=0.2)
    touching = rng.permutation(4)[: int(rng.integers(1, 5))]
    margins = [0 if side in touching else int(rng.integers(3, 12)) for side in range(4)]
    return d.on_paper(d.padded(ink, *margins), dark_ink=bool(rng.random() < 0.7))


def _box16(digit: np.ndarray) -> np.ndarray:
    return d.box_normalised(digit.astype(np.float32) / 255.0, 16)


RENDERED: dict[str, Render] = {
    "tight crop": tight_crop,
    "16x16 grey": lambda digit, rng: d.on_paper(_box16(digit)),
    "16x16 binary": lambda digit, rng: d.on_paper(d.binarised(_box16(digit), 0.35)),
    "16x16 x4 nearest": lambda digit, rng: d.on_paper(d.enlarged(_box16(digit), 4)),
    "16x16 x4 bilinear": lambda digit, rng: d.on_paper(
        d.enlarged(_box16(digit), 4, Image.Resampling.BILINEAR)
    ),
    "marker": lambda digit, rng: d.on_paper(
        d.padded(d.restroked(_mnist_ink(digit), int(rng.integers(6, 12))), 8, 8, 8, 8)
    ),
    "hairline": lambda digit, rng: d.on_paper(d.restroked(_mnist_ink(digit), -20)),
    "slanted": lambda digit, rng: d.on_paper(
        d.affine(
            _mnist_ink(digit),
            rng.uniform(-15, 15),
            rng.choice([-1, 1]) * rng.uniform(0.25, 0.45),
            pad=24,
        )
    ),
}


def rendered(digits: data.Split, count: int, seed: int) -> Iterator[Sample]:
    rng = np.random.default_rng(seed)
    for kind, render in RENDERED.items():
        for index in range(min(count, len(digits.labels))):
            label = int(digits.labels[index])
            yield Sample(kind, label, png(render(digits.images[index], rng)))


def _pen_samples(pen: list[realdigits.PenDigit], count: int) -> Iterator[Sample]:
    step = max(1, len(pen) // count)
    for digit in pen[::step][:count]:
        coverage = realdigits.draw(digit)
        yield Sample("pendigits canvas on white", digit.label, png(d.on_paper(coverage)))
        rgba = np.zeros((*coverage.shape, 4), dtype=np.uint8)
        rgba[..., :3] = 17
        rgba[..., 3] = np.rint(coverage * 255).astype(np.uint8)
        yield Sample("pendigits canvas transparent", digit.label, png(rgba, "RGBA"))


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
    yield from _pen_samples(sets.pen_test, count)
    opt = sets.opt_validation
    yield from _bitmap_samples("optdigits 32x32", opt.images, opt.labels, count)
    try:
        from sklearn.datasets import load_digits
    except ImportError:  # the train extra installs it
        print("scikit-learn not installed: load_digits not measured", file=sys.stderr)
        return
    small = load_digits()
    yield from _bitmap_samples("load_digits 8x8", small.images, small.target, count)


def measure(samples: Iterator[Sample], read: Callable[[list[bytes]], list[int | None]]) -> dict:
    """Per kind: count, share read correctly, share refused."""
    by_kind: dict[str, list[Sample]] = {}
    for sample in samples:
        by_kind.setdefault(sample.kind, []).append(sample)
    report = {}
    for kind, group in by_kind.items():
        answers = read([sample.content for sample in group])
        right = sum(answer == sample.label for answer, sample in zip(answers, group, strict=True))
        refused = sum(answer is None for answer in answers)
        report[kind] = {
            "count": len(group),
            "accuracy": round(right / len(group), 4),
            "refused": round(refused / len(group), 4),
        }
    return report


def service_reader() -> Callable[[list[bytes]], list[int | None]]:
    """The service's preprocessing and network, in-process; None for a refusal."""
    from app.config import get_settings
    from app.inference import load_classifier
    from app.preprocessing import PreprocessingError, preprocess

    classifier = load_classifier(get_settings().model_path)

    def read(contents: list[bytes]) -> list[int | None]:
        inputs: list[np.ndarray | None] = []
        for content in contents:
            try:
                inputs.append(preprocess(content))
            except PreprocessingError:
                inputs.append(None)
        readable = [x for x in inputs if x is not None]
        digits = iter(classifier.predict(np.stack(readable)).argmax(axis=1) if readable else [])
        return [None if x is None else int(next(digits)) for x in inputs]

    return read


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=500, help="digits per kind")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--data", help="folder with the MNIST .gz files (default: $MNIST_DIR)")
    parser.add_argument("--realdigits", help="folder with the UCI files ($REALDIGITS_DIR)")
    parser.add_argument("--json", help="also write the report here")
    args = parser.parse_args(argv)
    from model.uploads import held_out_digits

    digits = held_out_digits(data.load(args.data))
    sets = realdigits.load(args.realdigits)
    read = service_reader()
    report = measure(rendered(digits, args.count, args.seed), read)
    report |= measure(real(sets, args.count), read)
    width = max(map(len, report))
    print(f"{'kind':<{width}}  count  accuracy  refused")
    for kind, row in report.items():
        print(f"{kind:<{width}}  {row['count']:5d}  {row['accuracy']:8.2%}  {row['refused']:7.2%}")
    if args.json:
        with open(args.json, "w") as stream:
            json.dump(report, stream, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
