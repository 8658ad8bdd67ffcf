"""The network's twelfth output, "whole": whether a candidate digit that /read cut out
is one whole digit, neither a piece of one nor parts of two.

    python -m model.wholes [--model model/artifacts/digitnet.keras] [--count 2800]
        [--epochs 12] [--seed 0] [--data DIR]

/read (``app.splits``) reads every candidate a line's pieces make and keeps the best
split. The digit score (1 − p(not a digit)) learnt letters, scribbles and whole
numbers as no digit, but not what cutting touching digits makes: a 9 overlapping a 5,
taken whole, read as a 5 at 1.00; a 0 with the stub of its neighbour read as 9.
Here the network learns them from /read's own candidates: numbers of 2–4 digits of
the training split (MNIST, SOURCES of them box-normalised to 16×16 or pendigits'
training writers), composed as ``model.numbers`` writes them (most with a touching
pair, half of those overlapping more, up to OVERLAP of a digit's width), rendered as
a scan, a canvas drawing or ruled paper, and cut by
``app.segmentation.propose`` into every candidate it makes (every variant too). Each
candidate is labelled by the share of each digit's strokes it holds (``label``):
whole, not whole (parts of two digits, or a bit of one but a thin bit, which is what a
1 normalises to), or left out when it is neither clearly.

A small head (Dense 64, ReLU, Dense 1, sigmoid) on the network's features (its
Flatten, frozen) learns them, and its output joins the eleven after them: the
digits and the digit score are those of before (the same weights), so /predict
answers as before. ``model.train`` runs this after training; this command adds the
head to a trained model in place and records it in its card (``whole``). Run
``make convert`` and ``python -m model.quantize --ship`` after it.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image

from app import calibration, preprocessing, segmentation
from app.config import DEFAULT_MODEL_PATH
from app.engines import separated
from model import data, numbers, realdigits, uploads

WHOLE_SHARE = 0.8  # whole: this much of one digit's strokes,
OTHER_SHARE = 0.2  # and no more than this of any other (overlapping digits share some);
TWO_SHARE = 0.3  # not whole: this much of two digits' strokes,
PIECE_SHARE = 0.35  # or less than this of every digit's (a bit of one), unless thin.
# Left out: the rest, and thin bits. A half of a digit is often a digit itself to the
# eye (a 4's stem is a 1): the digit score judges those (as "not whole", a 1 beside a 5
# read as 7). A thin bit, its ink at most THIN times as wide as high in the network's
# input, is what a 1 normalises to: as "not whole" (14 of them to each whole thin
# digit), a fifth of MNIST's validation 1s scored under 0.5, against 1-4 % of the
# other digits; left out, 5 %.
THIN = 0.45
OWNED = 0.3  # a sheet pixel belongs to the digit whose ink there is strongest, if this strong
# Where a number's digits come from: pendigits' training writers drawn with a round
# pen, MNIST training digits box-normalised to 16×16 (half binarised), or as they are.
SOURCES = {"pendigits": 0.3, "box16": 0.1}
SPACINGS = {"touching": 0.7, "narrow": 0.2, "wide": 0.1}
OVERLAP = 0.35  # half the touching pairs overlap by up to this of a digit's width more
KINDS = ("scan", "canvas", "ruled")  # drawn at the sheet's size: its pixels are the image's
HIDDEN = 64
COUNT, EPOCHS = 2800, 12  # numbers composed; the head's epochs


def label(shares: np.ndarray, thin: bool = False) -> int | None:
    """Each digit's share of its strokes a candidate holds (and whether its input is
    ``thin``) -> 1 (one whole digit), 0 (parts of two digits, or a bit of one), None
    (neither clearly: left out)."""
    ordered = np.sort(shares)[::-1]
    second = ordered[1] if len(ordered) > 1 else 0.0
    if ordered[0] >= WHOLE_SHARE and second <= OTHER_SHARE:
        return 1
    if second >= TWO_SHARE or (ordered[0] < PIECE_SHARE and not thin):
        return 0
    return None


def thin(network_input: np.ndarray) -> bool:
    """Whether a 28×28 input's ink is at most THIN times as wide as it is high."""
    ink = network_input > 0.3
    columns, rows = np.flatnonzero(ink.any(axis=0)), np.flatnonzero(ink.any(axis=1))
    if not len(rows):
        return False
    return columns[-1] - columns[0] + 1 <= THIN * (rows[-1] - rows[0] + 1)


def owners(shape: tuple[int, int], places: list[tuple[int, int, np.ndarray]]) -> np.ndarray:
    """Each sheet pixel's digit (``numbers.placed``'s order): the one whose ink is
    strongest there, if at least OWNED; -1 elsewhere."""
    strongest = np.zeros(shape, dtype=np.float32)
    owner = np.full(shape, -1, dtype=np.int16)
    for index, (top, left, ink) in enumerate(places):
        window = (slice(top, top + ink.shape[0]), slice(left, left + ink.shape[1]))
        ink = ink[: shape[0] - top, : shape[1] - left]
        stronger = (ink > strongest[window]) & (ink >= OWNED)
        owner[window][stronger] = index
        strongest[window][stronger] = ink[stronger]
    return owner


def labelled(content: bytes, owner: np.ndarray, count: int) -> tuple[np.ndarray, np.ndarray]:
    """An upload of ``count`` digits whose sheet pixels belong to ``owner`` -> every
    candidate /read makes of it (inputs (n, 28, 28)) and its label (``label``)."""
    image = preprocessing.open_image(content)
    proposal = segmentation.propose(image, count + 8)
    proposal.expand()  # every candidate, every variant
    size = preprocessing.decode(image).size
    if owner.shape[::-1] != size:  # reduced to the working size
        shifted = Image.fromarray((owner + 1).astype(np.uint8))
        owner = np.asarray(shifted.resize(size, Image.Resampling.NEAREST)).astype(np.int16) - 1

    def held(group, first: int, last: int) -> np.ndarray:
        of = owner[group.pixels(first, last)]
        return np.bincount(of[of >= 0], minlength=count)[:count]

    line = proposal.groups[: len(proposal.pieces)]  # the line's groups, variants after
    strokes = sum(held(group, 0, group.count - 1) for group in line)
    every = proposal.inputs[..., 0]
    inputs, labels = [], []
    for index, candidate in enumerate(proposal.candidates):
        shares = held(proposal.groups[candidate.group], candidate.first, candidate.last)
        verdict = label(shares / np.maximum(strokes, 1), thin(every[index]))
        if verdict is not None:
            inputs.append(index)
            labels.append(verdict)
    return every[inputs], np.array(labels, dtype=np.uint8)


def _sources(rng: np.random.Generator, training: data.Split, pens: list) -> list[np.ndarray]:
    """2–4 training digits as 28×28-ish white-on-black images, from one source."""
    length = int(rng.integers(2, 5))
    source = rng.random()
    if source < SOURCES["pendigits"]:
        chosen = rng.integers(0, len(pens), length)
        drawn = (realdigits.draw(pens[i], side=112, pen=rng.uniform(5, 10)) for i in chosen)
        return [np.rint(image * 255).astype(np.uint8) for image in drawn]
    images = [training.images[i] for i in rng.integers(0, len(training.labels), length)]
    if source < SOURCES["pendigits"] + SOURCES["box16"]:
        binary = rng.random() < 0.5
        images = [numbers.box_digit(image, binary) for image in images]
    return images


def examples(
    training: data.Split, pens: list, count: int, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """``count`` numbers' labelled candidates: inputs (n, 28, 28) float32, labels (n,)."""
    rng = np.random.default_rng(seed)
    spacings, weights = list(SPACINGS), list(SPACINGS.values())
    inputs, labels = [], []
    for _ in range(count):
        images = _sources(rng, training, pens)
        spacing = str(rng.choice(spacings, p=weights))
        overlap = rng.uniform(0, OVERLAP) if rng.random() < 0.5 else 0.0
        sheet, baseline, places = numbers.placed(images, spacing, rng, overlap)
        kind = KINDS[int(rng.integers(len(KINDS)))]
        content = numbers.render(sheet, baseline, kind, rng, rng.uniform(-0.03, 0.03))
        try:
            x, y = labelled(content, owners(sheet.shape, places), len(images))
        except preprocessing.PreprocessingError:
            continue
        inputs.append(x)
        labels.append(y)
    return np.concatenate(inputs), np.concatenate(labels)


def _features(model):
    import keras

    flatten = next(layer for layer in model.layers if isinstance(layer, keras.layers.Flatten))
    return flatten.output


def attach(model, head):
    """The model with ``head``'s output on its features after its own outputs."""
    import keras

    outputs = keras.layers.Concatenate(name="outputs")([model.output, head(_features(model))])
    return keras.Model(model.input, outputs, name=model.name)


def fit(model, inputs: np.ndarray, labels: np.ndarray, epochs: int, seed: int) -> tuple:
    """A head trained on the model's frozen features; its accuracy on the 8 % held out."""
    import keras

    keras.utils.set_random_seed(seed)
    features = keras.Model(model.input, _features(model)).predict(
        inputs[..., np.newaxis], batch_size=1024, verbose=0
    )
    order = np.random.default_rng(seed).permutation(len(labels))
    held = order[: len(order) * 8 // 100]
    kept = order[len(held) :]

    def head():
        return keras.Sequential(
            [
                keras.Input(features.shape[1:]),
                keras.layers.Dense(HIDDEN, activation="relu"),
                keras.layers.Dense(1, activation="sigmoid"),
            ],
            name="whole",
        )

    trained = head()
    trained.compile(keras.optimizers.Adam(1e-3), "binary_crossentropy", metrics=["accuracy"])
    trained.fit(features[kept], labels[kept], batch_size=512, epochs=epochs, verbose=2)
    guessed = trained.predict(features[held], batch_size=4096, verbose=0)[:, 0] >= 0.5
    shipped = head()  # its weights alone: no optimizer state saved with the model
    shipped.set_weights(trained.get_weights())
    return shipped, float((guessed == labels[held].astype(bool)).mean())


def add(
    model_path: Path, training: data.Split, count: int, epochs: int, seed: int
) -> tuple[dict, int]:
    """Train the head for the model at ``model_path`` and save the model with it there;
    what to record in the card, and the saved model's parameters."""
    import keras

    started = time.time()
    pens = realdigits.load().pen_train
    inputs, labels = examples(training, pens, count, seed)
    model = keras.saving.load_model(model_path, compile=False)
    # The eleven outputs alone: a head it has already is trained anew.
    model = keras.Model(model.input, separated(model).outputs[0], name=model.name)
    head, accuracy = fit(model, inputs, labels, epochs, seed)
    joined = attach(model, head)
    joined.save(model_path)
    record = {
        "output_index": calibration.WHOLE,
        "meaning": "the input is one whole digit as /read cuts candidates, not a piece "
        "of one or parts of two (sigmoid)",
        "head": f"Dense {HIDDEN}, ReLU, Dense 1, sigmoid, on the frozen Flatten features",
        "numbers": count,
        "candidates": {"whole": int(labels.sum()), "not whole": int((labels == 0).sum())},
        "sources": {"mnist training split": 1 - sum(SOURCES.values()), **SOURCES},
        "epochs": epochs,
        "seed": seed,
        "held_out_accuracy": round(accuracy, 4),
        "seconds": round(time.time() - started, 1),
    }
    return record, int(joined.count_params())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=DEFAULT_MODEL_PATH)
    parser.add_argument("--count", type=int, default=COUNT, help="numbers composed")
    parser.add_argument("--epochs", type=int, default=EPOCHS)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--data", help="folder with the MNIST .gz files (default: $MNIST_DIR)")
    args = parser.parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from app import inference

    mnist = data.load(args.data)
    split_seed = uploads.split_seed(args.model) or 1
    training, _ = data.train_validation_split(mnist.train, 5000, split_seed)
    whole, parameters = add(args.model, training, args.count, args.epochs, args.seed)
    whole["command"] = " ".join(["python -m model.wholes", *(argv or sys.argv[1:])])
    whole["date"] = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    print(json.dumps(whole, indent=2))
    card_path = args.model.parent / inference.CARD_NAME
    card = json.loads(card_path.read_text())
    sha256 = data.sha256_of(args.model)
    card.update(
        version=card["version"].rsplit("-", 1)[0] + "-" + sha256[:7],
        file_bytes=args.model.stat().st_size,
        sha256=sha256,
        parameters=parameters,
        whole=whole,
    )
    for stale in ("litert", "litert_int8"):  # of the model before: make convert, quantize
        card.pop(stale, None)
    card_path.write_text(json.dumps(card, indent=2) + "\n")
    print(f"wrote {args.model} and {card_path}: run make convert, python -m model.quantize --ship")
    return 0


if __name__ == "__main__":
    sys.exit(main())
