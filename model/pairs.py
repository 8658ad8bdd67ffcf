"""Train the pair reader (``app.pairs``): two touching digits read whole.

Its examples are written as ``model.numbers`` writes a touching pair (slid together
until the strokes meet, then a little more; a third of them overlapping by up to a
quarter of a digit more; slanted, at other heights), two digits from the MNIST
training split (never the digits the digit network holds out, split seed 1), from
pendigits' training writers drawn with round pens (30 %) or box-normalised to 16×16
(10 %), and fitted into 28×56 by ``app.pairs.fit_pair``. One in eight is a single
digit, one in twelve three digits with a touching pair, and one in twelve
(``--letters``) one letter or symbol that looks like no digit or two of them touching,
in the training fonts with the digits' distortions (``model.augment``; a letter cut in
two had read as two digits, an H as "11"): "not two digits".

    python -m model.pairs [--count 150000] [--epochs 8] [--letters 0.08]
        [--out model/artifacts] [--data MNIST_DIR] [--realdigits DIR]

writes ``pairnet.keras``, its LiteRT form ``pairnet.tflite`` and ``pairnet_card.json``
(~30 minutes on a 2-core CPU).
"""

from __future__ import annotations

import argparse
import functools
import hashlib
import json
import time
from datetime import UTC, datetime
from multiprocessing import Pool
from pathlib import Path

import numpy as np

from app import pairs
from model import augment, data, numbers, realdigits

SOURCES = (("mnist", 0.6), ("pendigits", 0.3), ("box16", 0.1))
SINGLE, TRIPLE, LETTERS = 0.12, 0.08, 0.08  # shares of "not two digits"
CHUNK = 10_000  # examples made by one worker task


@functools.lru_cache(maxsize=2)
def _mnist(folder: str | None, held_out: bool) -> data.Split:
    """The MNIST training split, or the digits it holds out (split seed 1), read once
    per process: each worker makes several chunks."""
    training, validation = data.train_validation_split(data.load(folder).train, 5000, 1)
    return validation if held_out else training


@functools.lru_cache(maxsize=1)
def _pen_writers(folder: str | None) -> list[realdigits.PenDigit]:
    """Pendigits' training writers' digits, read once per process."""
    return realdigits.load(folder).pen_train


@functools.lru_cache(maxsize=1)
def _fonts() -> list[Path]:
    """The training fonts (``model.augment.fonts``), found once per process."""
    return augment.fonts(training=True)


def _letters(rng: np.random.Generator) -> list[np.ndarray]:
    """One letter or symbol that looks like no digit, or two (then written touching),
    as MNIST stores a digit (uint8, ink bright)."""
    drawn = []
    while len(drawn) < (1 if rng.random() < 0.6 else 2):
        ink = augment.glyph_ink(rng, _fonts(), drawn_only=True)
        if ink.max() >= 0.5:  # a hairline stroke may thin a glyph away
            drawn.append(np.rint(ink * 255).astype(np.uint8))
    return drawn


def _digits(source: str, mnist: data.Split, pens: list, indices: np.ndarray, rng) -> tuple:
    """The chosen digits as MNIST stores them (uint8, ink bright), and their labels."""
    if source == "pendigits":
        chosen = [pens[i % len(pens)] for i in indices]
        images = [realdigits.draw(pen, side=112, pen=float(rng.uniform(4, 12))) for pen in chosen]
        return [np.rint(image * 255).astype(np.uint8) for image in images], [
            pen.label for pen in chosen
        ]
    indices = indices % len(mnist.labels)
    images = [mnist.images[i] for i in indices]
    if source == "box16":
        images = [numbers.box_digit(image, bool(rng.random() < 0.5)) for image in images]
    return images, [int(mnist.labels[i]) for i in indices]


def examples(
    seed: int,
    count: int,
    held_out: bool = False,
    folders: tuple[str | None, str | None] = (None, None),
    letters: float = LETTERS,
) -> tuple[np.ndarray, np.ndarray]:
    """``count`` examples drawn with ``seed``: (count, 28, 56) uint8 inputs and labels
    (10 × first + second, or ``app.pairs.NOT_A_PAIR``); from the validation digits
    (MNIST's alone, no letters) if ``held_out``. ``folders``: MNIST's and the UCI
    files' (default: $MNIST_DIR, $REALDIGITS_DIR); ``letters``: the share of letters."""
    rng = np.random.default_rng(seed)
    mnist = _mnist(folders[0], held_out)
    pens = [] if held_out else _pen_writers(folders[1])
    names, shares = zip(*SOURCES, strict=True)
    inputs = np.zeros((count, *pairs.INPUT_SHAPE[:2]), dtype=np.uint8)
    labels = np.zeros(count, dtype=np.int16)
    for index in range(count):
        draw = rng.random()
        if not held_out and draw >= 1.0 - letters:
            images, label, overlap = _letters(rng), pairs.NOT_A_PAIR, 0.0
        else:
            digits = 1 if draw < SINGLE else 3 if draw < SINGLE + TRIPLE else 2
            source = "mnist" if held_out else str(rng.choice(names, p=shares))
            images, chosen = _digits(source, mnist, pens, rng.integers(0, 1 << 30, digits), rng)
            label = 10 * chosen[0] + chosen[1] if digits == 2 else pairs.NOT_A_PAIR
            overlap = float(rng.uniform(0, 0.25)) if rng.random() < 1 / 3 else 0.0
        spacing = "wide" if len(images) == 1 else "touching"
        sheet, _, _ = numbers.placed(images, spacing, rng, overlap=overlap)
        inputs[index] = np.rint(pairs.fit_pair(sheet) * 255)
        labels[index] = label
    return inputs, labels


def network():
    """Conv 16-32-32-64 with batch norm, Dense 128: ~7.6 M multiply-adds a pair."""
    import keras
    from keras import layers

    def block(x, filters: int):
        x = layers.Conv2D(filters, 3, padding="same", use_bias=False)(x)
        return layers.ReLU()(layers.BatchNormalization()(x))

    inputs = keras.Input(shape=pairs.INPUT_SHAPE, name="pair")
    x = layers.MaxPooling2D()(block(inputs, 16))  # 14×28
    x = layers.MaxPooling2D()(block(block(x, 32), 32))  # 7×14
    x = layers.MaxPooling2D()(block(x, 64))  # 3×7
    x = layers.Dropout(0.4)(layers.Flatten()(x))
    x = layers.Dropout(0.3)(layers.Dense(128, activation="relu")(x))
    outputs = layers.Dense(pairs.NOT_A_PAIR + 1, activation="softmax", name="pairs")(x)
    return keras.Model(inputs, outputs, name="pairnet")


def train(args: argparse.Namespace) -> dict:
    import keras
    import tensorflow as tf

    started = time.time()
    folders = (args.data, args.realdigits)
    tasks = [
        (args.seed * 1000 + i, CHUNK, False, folders, args.letters)
        for i in range(args.count // CHUNK)
    ]
    with Pool(2) as pool:
        made = pool.starmap(examples, [*tasks, (args.seed * 1000 + 999, 5000, True, folders)])
    x = np.concatenate([inputs for inputs, _ in made[:-1]])[..., np.newaxis] / np.float32(255)
    y = np.concatenate([labels for _, labels in made[:-1]]).astype(np.int32)
    x_held = made[-1][0][..., np.newaxis] / np.float32(255)
    y_held = made[-1][1].astype(np.int32)
    rendered = time.time() - started

    keras.utils.set_random_seed(args.seed)
    model = network()
    steps = len(y) // 128
    schedule = keras.optimizers.schedules.CosineDecay(
        1e-4, args.epochs * steps, warmup_target=2e-3, warmup_steps=steps
    )
    model.compile(
        keras.optimizers.Adam(schedule),
        "sparse_categorical_crossentropy",
        metrics=["accuracy"],
        jit_compile=True,
    )
    model.fit(x, y, batch_size=128, epochs=args.epochs, verbose=2)
    out = Path(args.out)
    shipped = network()  # its weights, without the optimizer's state
    shipped.set_weights(model.get_weights())
    shipped.save(out / "pairnet.keras")
    flatbuffer = tf.lite.TFLiteConverter.from_keras_model(model).convert()
    (out / pairs.FILE).write_bytes(flatbuffer)
    predicted = pairs.PairReader(flatbuffer, {})(x_held).argmax(axis=1)
    two = y_held != pairs.NOT_A_PAIR
    card = {
        "name": "pairnet",
        "file": pairs.FILE,
        "sha256": hashlib.sha256(flatbuffer).hexdigest(),
        "parameters": int(model.count_params()),
        "input": "28x56x1 float32 in [0, 1], ink bright: app.pairs.fit_pair",
        "classes": "10 x first + second digit (0-99); 100: not two digits (or letters)",
        "data": {
            "examples": len(y),
            "sources": dict(SOURCES),
            "single": SINGLE,
            "triple": TRIPLE,
            "letters": args.letters,
            "mnist_split_seed": 1,
        },
        "training": {"epochs": args.epochs, "batch": 128, "seed": args.seed},
        "held_out": {
            "examples": len(y_held),
            "accuracy": round(float((predicted == y_held).mean()), 4),
            "pairs_accuracy": round(float((predicted == y_held)[two].mean()), 4),
            "source": "MNIST validation digits (split seed 1), LiteRT form",
        },
        "seconds": {"rendering": round(rendered, 1), "all": round(time.time() - started, 1)},
        "command": "python -m model.pairs",
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    (out / pairs.CARD).write_text(json.dumps(card, indent=2) + "\n")
    return card


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=150_000, help="training examples")
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--letters", type=float, default=LETTERS, help="share of letters and symbols"
    )
    parser.add_argument("--out", default="model/artifacts")
    parser.add_argument("--data", help="folder with the MNIST .gz files (default: $MNIST_DIR)")
    parser.add_argument("--realdigits", help="folder with the UCI files ($REALDIGITS_DIR)")
    card = train(parser.parse_args(argv))
    print(json.dumps(card["held_out"], indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
