"""Real handwriting that MNIST's preparation never touched, checksummed.

Two UCI sets (Alpaydin & Alimoglu; Alpaydin & Kaynak; CC BY 4.0), read from the
folder named by ``--realdigits DIR``, the ``REALDIGITS_DIR`` environment variable or
``../shared/data/realdigits`` beside the project:

- **pendigits**: digits written on a tablet, as pen trajectories (training split by
  30 writers, test split by 14 others). ``draw`` renders them with a round pen, as a
  finger or mouse draws on the page's canvas.
- **optdigits**: 32×32 binary bitmaps from scanned forms (NIST's preparation: heavy
  strokes, each digit stretched to the full height). The training split and the
  validation split come from the same 30 writers.
"""

from __future__ import annotations

import gzip
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from model import data

SHARED_DIR = data.PROJECT_ROOT.parent / "shared" / "data" / "realdigits"
CHECKSUMS = {
    "pendigits-orig.tra.gz": "d6a5f33f75b481a5bdbfc64a3429574ad21d54c258767f2c31aca6e47b9159fc",
    "pendigits-orig.tes.gz": "76f9169c808c67d7f19734cbf73211fc0cb834129ec7c7e2130534b8fe04727e",
    "optdigits-orig.tra.gz": "c2f28753123edadfe89322f977cd153f2874e799b45139908036f7d58281620e",
    "optdigits-orig.cv.gz": "71b953369a050e2350d9a6934d6cb2df70284128bdf9dddd3024aab76c16d356",
}
TABLET_SIDE = 500  # pendigits coordinates lie on a 500×500 tablet, y pointing up
# The pendigits test writer whose 4s the file holds without their stem: 25 of their 26
# are one stroke, the curve before the stem (a "ς"), which no reader calls a 4. Other
# writers' one-stroke 4s are whole (docs/model.md#handwriting-in-the-world).
STEMLESS_WRITER = 13
BITMAP_SIDE = 32


class RealDigitsError(RuntimeError):
    """The real-handwriting files are missing, corrupt or unreadable."""


@dataclass(frozen=True)
class PenDigit:
    label: int
    strokes: tuple[np.ndarray, ...]  # each (points, 2) float: x right, y down, tablet units
    writer: int | None = None  # the number ``.COMMENT label writer sample`` gives it


@dataclass(frozen=True)
class Bitmaps:
    images: np.ndarray  # (n, 32, 32) uint8, 1 = ink
    labels: np.ndarray  # (n,) uint8


@dataclass(frozen=True)
class RealDigits:
    pen_train: list[PenDigit]
    pen_test: list[PenDigit]
    opt_train: Bitmaps
    opt_validation: Bitmaps
    folder: Path

    @property
    def pen_test_legible(self) -> list[PenDigit]:
        """``pen_test`` less the 4s recorded without their stem (``stemless``): what
        the measures read as people write."""
        return [digit for digit in self.pen_test if not stemless(digit)]


def stemless(digit: PenDigit) -> bool:
    """Whether a pendigits *test* digit is one of STEMLESS_WRITER's 4s recorded as
    one stroke (writer numbers are the test file's own)."""
    return digit.writer == STEMLESS_WRITER and digit.label == 4 and len(digit.strokes) == 1


def _hint() -> str:
    return (
        "Point the reader at a folder holding the four UCI .gz files with --realdigits DIR "
        "or the REALDIGITS_DIR environment variable."
    )


def locate(folder: str | os.PathLike[str] | None = None) -> Path:
    """The folder holding the four verified files."""
    folder = folder or os.environ.get("REALDIGITS_DIR") or SHARED_DIR
    path = Path(folder).expanduser()
    if not path.is_dir():
        raise RealDigitsError(f"real-handwriting folder {path} does not exist. {_hint()}")
    data.verify(path, CHECKSUMS, RealDigitsError, _hint())
    return path


def _lines(path: Path) -> list[str]:
    with gzip.open(path, "rt", encoding="ascii") as stream:
        return stream.read().splitlines()


def read_pendigits(path: Path) -> list[PenDigit]:
    """UNIPEN text: ``.SEGMENT DIGIT n ? "8"``, ``.COMMENT 8 12 224`` (the label, the
    writer, the sample), then ``.PEN_DOWN``, points, ``.PEN_UP``."""
    digits: list[PenDigit] = []
    label: int | None = None
    writer: int | None = None
    strokes: list[np.ndarray] = []
    points: list[tuple[int, int]] | None = None

    def finish() -> None:
        if label is not None and strokes:
            digits.append(PenDigit(label, tuple(strokes), writer))

    for number, line in enumerate(_lines(path), start=1):
        words = line.split()
        if not words:
            continue
        if words[0] == ".SEGMENT":
            finish()
            label, writer, strokes = int(words[-1].strip('"')), None, []
        elif words[0] == ".COMMENT" and len(words) >= 3 and words[2].isdigit():
            writer = int(words[2])
        elif words[0] == ".PEN_DOWN":
            points = []
        elif words[0] == ".PEN_UP":
            if points:
                stroke = np.asarray(points, dtype=np.float32)
                stroke[:, 1] = TABLET_SIDE - stroke[:, 1]  # y up on the tablet, down on screen
                strokes.append(stroke)
            points = None
        elif points is not None:
            try:
                points.append((int(words[0]), int(words[1])))
            except (ValueError, IndexError):
                raise RealDigitsError(f"{path}:{number}: not a point: {line!r}") from None
    finish()
    return digits


def read_optdigits(path: Path) -> Bitmaps:
    """A header, then per digit 32 lines of 0/1 and a line with the label."""
    lines = _lines(path)
    start = next(i for i, line in enumerate(lines) if len(line.strip()) == BITMAP_SIDE)
    images, labels = [], []
    body = [line.strip() for line in lines[start:] if line.strip()]
    for first in range(0, len(body) - BITMAP_SIDE, BITMAP_SIDE + 1):
        rows = body[first : first + BITMAP_SIDE]
        if any(len(row) != BITMAP_SIDE for row in rows):
            raise RealDigitsError(f"{path}: a bitmap near line {start + first} is not 32×32")
        images.append(np.array([[c == "1" for c in row] for row in rows], dtype=np.uint8))
        labels.append(int(body[first + BITMAP_SIDE]))
    return Bitmaps(np.stack(images), np.asarray(labels, dtype=np.uint8))


def load(folder: str | os.PathLike[str] | None = None) -> RealDigits:
    path = locate(folder)
    return RealDigits(
        pen_train=read_pendigits(path / "pendigits-orig.tra.gz"),
        pen_test=read_pendigits(path / "pendigits-orig.tes.gz"),
        opt_train=read_optdigits(path / "optdigits-orig.tra.gz"),
        opt_validation=read_optdigits(path / "optdigits-orig.cv.gz"),
        folder=path,
    )


def draw(
    digit: PenDigit, side: int = 280, pen: float = 16.0, fill: float = 0.6, supersample: int = 4
) -> np.ndarray:
    """Ink coverage in [0, 1] of a pen digit drawn with a round pen of ``pen`` px,
    its taller side ``fill`` of a ``side``×``side`` square, centred (as on the page)."""
    points = np.concatenate(digit.strokes)
    low, high = points.min(axis=0), points.max(axis=0)
    scale = fill * side / max(float((high - low).max()), 1.0)
    offset = side / 2 - (low + high) / 2 * scale
    big = side * supersample
    image = Image.new("L", (big, big), 0)
    canvas = ImageDraw.Draw(image)
    radius = pen * supersample / 2
    for stroke in digit.strokes:
        xy = [tuple(p) for p in (stroke * scale + offset) * supersample]
        if len(xy) > 1:
            canvas.line(xy, fill=255, width=round(2 * radius), joint="curve")
        for x, y in (xy[0], xy[-1]):  # round caps
            canvas.ellipse((x - radius, y - radius, x + radius, y + radius), fill=255)
    image = image.resize((side, side), Image.Resampling.BOX)
    return np.asarray(image, dtype=np.float32) / 255.0
