"""Two touching digits read as one pair: /read's second opinion where it cut ink.

Touching digits are the hardest part of reading a number: a straight or bent cut
through the ink leaves one digit a piece of its neighbour's stroke, or takes part of
its own, and the network reads the piece. A small network of its own, the pair reader
(``model.pairs``), reads such a group whole: its input is the group's ink fitted into
28×56 (``fit_pair``), its 101 outputs the pairs "00" to "99" and "not two digits" (one
digit, three, or letters and symbols). ``app.splits`` asks it about each group whose
best split cuts through a stroke, and each group read as one digit not surely; where it
is sure of a pair (SURE, and SURE_WHOLE for the latter), the group is read as that
pair. Where a cut split is in two and the reader says "not two digits" (NO_PAIR), the
splits cut one digit in two: the group is read whole, as one digit; so too where a cut
split is in three or more and it says so of every two neighbouring digits (a letter's
strokes).

No web framework and no TensorFlow here: ``model.pairs`` trains with ``fit_pair``.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
from PIL import Image

from app import ink_blobs, pillow_core
from app.engines import LiteRTEngine
from app.inference import ModelLoadError

INPUT_SHAPE = (28, 56, 1)
INK_BOX = (24, 52)  # the ink's box is fitted into this, its shape kept (rows, columns)
NOT_A_PAIR = 100  # the last output: one digit, three, or letters and symbols
FILE = "pairnet.tflite"
CARD = "pairnet_card.json"
# A pair's probability at least this: the group is read as that pair (chosen on
# model.numbers' tuning draws, MNIST seed 7 and pendigits seed 3: docs/pairs.md).
SURE = 0.9
# The same for a group the digit network read as one digit, not surely (two digits
# merged into one shape): the network's reading is kept unless the reader is surer.
SURE_WHOLE = 0.99
# Its "not two digits" at least this for a group whose best split is in two and cuts
# through a stroke: one digit cut in two (a 5 as "15", a 2 as "21"), read whole (chosen
# on the tuning draws, as SURE: docs/pairs.md).
NO_PAIR = 0.5


def fit_pair(ink: np.ndarray) -> np.ndarray:
    """A group's ink (2-D, in [0, 1], no other stroke) -> the pair reader's 28×56
    input: cropped to the ink, scaled (its shape kept) to fit 24×52, centred."""
    canvas = np.zeros(INPUT_SHAPE[:2], dtype=np.float32)
    box = ink_blobs.bounds(ink > 0.05)
    if box is None:
        return canvas
    top, bottom, left, right = box
    crop = ink[top:bottom, left:right].astype(np.float32)
    height, width = crop.shape
    scale = min(INK_BOX[0] / height, INK_BOX[1] / width)
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    crop = np.clip(pillow_core.resized(crop, size, Image.Resampling.LANCZOS), 0.0, 1.0)
    top = (INPUT_SHAPE[0] - crop.shape[0]) // 2
    left = (INPUT_SHAPE[1] - crop.shape[1]) // 2
    canvas[top : top + crop.shape[0], left : left + crop.shape[1]] = crop
    return canvas


def pair(outputs: np.ndarray, sure: float = SURE) -> tuple[np.ndarray, np.ndarray] | None:
    """One input's 101 outputs -> the two digits' probabilities (each the pair
    probabilities summed over the other digit, renormalised), or None where the
    reader is not ``sure`` of one pair."""
    best = int(np.argmax(outputs))
    if best == NOT_A_PAIR or outputs[best] < sure:
        return None
    pairs = outputs[:NOT_A_PAIR].astype(np.float64).reshape(10, 10)  # [first, second]
    first, second = pairs.sum(axis=1), pairs.sum(axis=0)
    return (first / first.sum()).astype(np.float32), (second / second.sum()).astype(np.float32)


def no_pair(outputs: np.ndarray) -> bool:
    """Whether one input's 101 outputs say "not two digits" (NO_PAIR)."""
    return bool(outputs[NOT_A_PAIR] >= NO_PAIR)


class PairReaderError(ModelLoadError):
    """The pair reader's file does not match its card: the service does not start."""


class PairReader:
    """The pair reader's LiteRT form: (n, 28, 56, 1) inputs -> (n, 101) outputs."""

    def __init__(self, flatbuffer: bytes, card: dict):
        self.card = card
        # One pair a call (a number rarely has two touching pairs): 1.1 MB resident
        # beside the digit network, against 6.5 MB with batches of up to 8.
        self._engine = LiteRTEngine(flatbuffer, INPUT_SHAPE, largest=1)

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        return self._engine(batch.astype(np.float32, copy=False))


def load(folder: Path) -> PairReader | None:
    """The pair reader shipped in ``folder`` (beside the digit network), checked
    against its card's checksum; None where the folder has none (/read then cuts
    every group, as without it)."""
    path, card_path = folder / FILE, folder / CARD
    if not path.exists() or not card_path.exists():
        return None
    flatbuffer = path.read_bytes()
    card = json.loads(card_path.read_text())
    if hashlib.sha256(flatbuffer).hexdigest() != card.get("sha256"):
        raise PairReaderError(f"{path} does not match the checksum in {card_path}")
    return PairReader(flatbuffer, card)


def main(argv: list[str] | None = None) -> int:
    """``python -m app.pairs FOLDER``: load the pair reader shipped there as the service
    does; exit 1 where it is missing or unlike its card (the image's build checks it)."""
    import argparse
    import sys

    parser = argparse.ArgumentParser(description="Check the pair reader shipped in FOLDER.")
    parser.add_argument("folder", type=Path)
    folder = parser.parse_args(argv).folder
    try:
        reader = load(folder)
    except PairReaderError as error:
        print(error, file=sys.stderr)
        return 1
    if reader is None:
        print(f"no pair reader in {folder}", file=sys.stderr)
        return 1
    print(json.dumps({"pair_reader": reader.card["sha256"]}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
