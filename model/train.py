"""Train a digit classifier on MNIST and write the model the service ships with.

    python -m model.train [--arch digitnet] [--epochs 20] [--data DIR] [--realdigits DIR]
                          [--teacher PATH] [--start-from PATH] [--out model/artifacts]

Setup, prepare the data (a seeded validation split carved from the 60,000 training
images picks the best epoch; ``--split-seed`` keeps another run's, so that a network
trained with another ``--seed`` holds out the digits ``model.uploads``, ``model.world``
and ``model.numbers`` measure on: the shipped model's, seed 1), add ``model.augment``'s
world variants of the training digits, pendigits' and optdigits' training writers, and
non-digits as an eleventh class, build the model, train with on-the-fly affine
augmentation, calibrate (temperature and the not-a-digit threshold, on the validation
split), evaluate once on the 10,000 test images, add the "whole" output that /read scores
its candidates with (``model.wholes``, on ``--whole-numbers`` numbers; not with
``--mnist-only``), and write ``<out>/<arch>.keras`` with ``model_card.json`` and two
plots beside it. With ``--teacher``, the network learns from
that network's outputs as well as the labels (distillation: ``distillation_loss``); with
``--start-from``, it starts from that network's weights (a fine-tune; its "whole" output
is trained anew as always).

Runs on the CPU with TensorFlow; with ``KERAS_BACKEND=jax`` on a GPU as well.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import importlib.util
import json
import os
import platform
import sys
import time
from importlib import metadata
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np

from app import calibration
from model import augment, data, realdigits, saved_extras, wholes
from model.evaluate import as_network_input, evaluate

DEFAULT_OUT = Path(__file__).resolve().parent / "artifacts"
CARD_NAME = "model_card.json"
STEPS_PER_EXECUTION = 8
REFUSE_SHARE = 0.002  # the share of validation digits the not-a-digit threshold refuses
# Distillation (--teacher): the loss is SOFT_WEIGHT of the teacher's outputs softened by
# TEMPERATURE (as Hinton et al. 2015; their gradients scaled back by its square) and the
# rest the labels' cross-entropy.
TEMPERATURE = 4.0
SOFT_WEIGHT = 0.7


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    from model.network import ARCHITECTURES, DEFAULT_ARCHITECTURE

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--arch", choices=sorted(ARCHITECTURES), default=DEFAULT_ARCHITECTURE)
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--learning-rate", type=float, default=2e-3)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--split-seed",
        type=int,
        help="seed of the validation split and its extras (default: --seed); a network "
        "trained to stand beside another must hold out the same digits",
    )
    parser.add_argument("--validation-size", type=int, default=5000)
    parser.add_argument("--data", help="folder with the MNIST .gz files (default: $MNIST_DIR)")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument(
        "--limit", type=int, help="train on the first N training images only (smoke tests)"
    )
    parser.add_argument("--no-augment", action="store_true", help="train without augmentation")
    parser.add_argument(
        "--realdigits", help="folder with the UCI real-handwriting files ($REALDIGITS_DIR)"
    )
    parser.add_argument(
        "--mnist-only",
        action="store_true",
        help="no world variants, real writers or non-digits (the network still has 11 outputs)",
    )
    parser.add_argument("--workers", type=int, help="processes rendering the extra images")
    parser.add_argument(
        "--crossed-sevens",
        type=float,
        default=0.0,
        help="the share of the 7s written crossed (model.habits); 0 in the shipped recipe",
    )
    parser.add_argument("--drawn-letters", action="store_true", help="no .notdef boxes as letters")
    parser.add_argument("--start-from", type=Path, help="fine-tune this .keras network's weights")
    parser.add_argument(
        "--extras",
        type=Path,
        help="reuse the extra images saved in this .npz; render and save them there if absent",
    )
    parser.add_argument(
        "--render-only", action="store_true", help="render and save the --extras, then stop"
    )
    parser.add_argument(
        "--whole-numbers",
        type=int,
        default=wholes.COUNT,
        help="numbers whose /read candidates train the whole output (model.wholes)",
    )
    parser.add_argument(
        "--teacher",
        type=Path,
        help="distil from this .keras network: it sees each augmented batch as the student does",
    )
    args = parser.parse_args(argv)
    if args.split_seed is None:
        args.split_seed = args.seed
    if args.render_only and (args.extras is None or args.mnist_only):
        parser.error("--render-only saves the extras: it needs --extras FILE, not --mnist-only")
    return args


def device_description() -> str:
    import keras

    backend = keras.backend.backend()
    if backend == "jax":
        import jax

        accelerators = [d.device_kind for d in jax.devices() if d.platform != "cpu"]
    elif backend == "tensorflow":
        import tensorflow as tf

        accelerators = [d.name for d in tf.config.list_physical_devices("GPU")]
    else:
        accelerators = []
    where = ", ".join(accelerators) if accelerators else f"CPU ({os.cpu_count()} cores)"
    return f"{backend} on {where}"


def versions() -> dict[str, str]:
    found = {"python": platform.python_version()}
    for name in ("keras", "tensorflow", "tensorflow-cpu", "jax", "numpy"):
        with contextlib.suppress(metadata.PackageNotFoundError):
            found[name] = metadata.version(name)
    return found


def save_plots(history: dict, confusion: list[list[int]], out: Path, name: str) -> list[str]:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib not installed (pip install '.[train]'): no plots written")
        return []
    figure, (loss_axes, accuracy_axes) = plt.subplots(1, 2, figsize=(10, 4))
    epochs = range(1, len(history["loss"]) + 1)
    for key, axes in (("loss", loss_axes), ("accuracy", accuracy_axes)):
        axes.plot(epochs, history[key], label="train")
        axes.plot(epochs, history[f"val_{key}"], label="validation")
        axes.set_xlabel("epoch")
        axes.set_title(key)
        axes.legend()
    if "val_accuracy" in history:
        accuracy_axes.set_ylim(max(0.9, min(history["val_accuracy"]) - 0.005), 1.0)
    figure.tight_layout()
    curves = out / f"{name}_training_curves.png"
    figure.savefig(curves, dpi=100)
    plt.close(figure)

    figure, axes = plt.subplots(figsize=(6, 5.5))
    matrix = np.asarray(confusion)
    off_diagonal = matrix - np.diag(matrix.diagonal())
    image = axes.imshow(off_diagonal, cmap="Reds")
    for row in range(10):
        for column in range(10):
            if matrix[row, column]:
                axes.text(column, row, matrix[row, column], ha="center", va="center", fontsize=7)
    axes.set_xticks(range(10))
    axes.set_yticks(range(10))
    axes.set_xlabel("predicted digit")
    axes.set_ylabel("true digit")
    axes.set_title("Confusion on the 10,000 test images (colour: errors)")
    figure.colorbar(image)
    figure.tight_layout()
    confusion_path = out / f"{name}_confusion_matrix.png"
    figure.savefig(confusion_path, dpi=100)
    plt.close(figure)
    return [curves.name, confusion_path.name]


def rendered_extras(args: argparse.Namespace, training, validation, mnist) -> tuple:
    """(training extras, validation extras, the seconds rendering took): from --extras
    when it holds them for this recipe, else rendered (and saved there)."""
    habits = {"crossed_sevens": args.crossed_sevens, "drawn_letters": args.drawn_letters}
    wanted = saved_extras.recipe(
        args.seed, args.validation_size, args.limit, mnist.checksums, args.split_seed, habits
    )
    if args.extras and args.extras.exists():
        return saved_extras.load(args.extras, wanted)
    started = time.time()
    real = realdigits.load(args.realdigits)
    extras = augment.training_extras(training, real, args.seed, args.workers, habits)
    held = augment.validation_extras(validation, args.split_seed, args.workers, habits)
    seconds = round(time.time() - started, 1)
    if args.extras:
        saved_extras.save(args.extras, extras, held, wanted, seconds)
    return extras, held, seconds


def distillation_loss(labels, outputs):
    """The student's loss (``--teacher``): ``outputs`` hold its probabilities, then the
    teacher's."""
    from keras import ops

    from model.network import NUM_CLASSES

    student, teacher = outputs[:, :NUM_CLASSES], ops.stop_gradient(outputs[:, NUM_CLASSES:])
    hard = ops.sparse_categorical_crossentropy(labels, student)
    soft_student, soft_teacher = _softened(student), _softened(teacher)
    divergence = ops.sum(soft_teacher * (ops.log(soft_teacher) - ops.log(soft_student)), -1)
    return (1.0 - SOFT_WEIGHT) * hard + SOFT_WEIGHT * TEMPERATURE**2 * divergence


def _softened(probabilities):
    """Softmax outputs as at TEMPERATURE: the softmax of their logs divided by it."""
    from keras import ops

    logits = ops.log(ops.clip(probabilities, 1e-7, 1.0)) / TEMPERATURE
    return ops.clip(ops.softmax(logits), 1e-7, 1.0)


def accuracy(labels, outputs):
    """The student's accuracy (``--teacher``), under the usual metric's name."""
    import keras

    from model.network import NUM_CLASSES

    return keras.metrics.sparse_categorical_accuracy(labels, outputs[:, :NUM_CLASSES])


def train(args: argparse.Namespace) -> dict:
    import keras

    from model import network

    started = time.time()
    keras.utils.set_random_seed(args.seed)
    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        tf.config.experimental.enable_op_determinism()

    # Prepare the data: the test set is only read for the final report.
    mnist = data.load(args.data)
    training, validation = data.train_validation_split(
        mnist.train, args.validation_size, args.split_seed
    )
    if args.limit:
        training = data.Split(training.images[: args.limit], training.labels[: args.limit])
    x_train, y_train = as_network_input(training.images), training.labels.astype(np.int64)
    x_val, y_val = as_network_input(validation.images), validation.labels.astype(np.int64)
    sources = {"MNIST training split": len(y_train)}
    render_seconds = None
    if not args.mnist_only:
        extras, held, render_seconds = rendered_extras(args, training, validation, mnist)
        if args.render_only:
            print(f"extras in {args.extras}: {extras.counts}, {len(held.labels)} validation")
            return {}
        sources |= extras.counts
        x_train = np.concatenate([x_train, extras.inputs[..., np.newaxis]])
        y_train = np.concatenate([y_train, extras.labels])
        x_val = np.concatenate([x_val, held.inputs[..., np.newaxis]])
        y_val = np.concatenate([y_val, held.labels])
    print(f"data: {mnist.folder}, {sources}, {len(y_val)} validation images")

    # Build the model; augmentation lives only in the training graph.
    model = network.build(args.arch)
    if args.start_from:
        from app.engines import separated

        start = keras.saving.load_model(args.start_from, compile=False)
        model.set_weights(keras.Model(start.input, separated(start).outputs[0]).get_weights())
    model.summary()
    inputs = keras.Input(shape=network.INPUT_SHAPE)
    augmented = inputs if args.no_augment else network.RandomAffine(seed=args.seed)(inputs)
    loss, metrics = "sparse_categorical_crossentropy", ["accuracy"]
    if args.teacher:  # the student's outputs, then the frozen teacher's
        teacher = keras.saving.load_model(args.teacher, compile=False)
        teacher.trainable = False
        taught = teacher(augmented)[:, : network.NUM_CLASSES]  # not its "whole" output
        outputs = keras.layers.Concatenate()([model(augmented), taught])
        loss, metrics = distillation_loss, [accuracy]
    else:
        outputs = model(augmented)
    trainer = keras.Model(inputs, outputs)
    steps = args.epochs * int(np.ceil(len(y_train) / args.batch_size))
    schedule = keras.optimizers.schedules.CosineDecay(
        0.0, steps, warmup_target=args.learning_rate, warmup_steps=max(1, steps // 20)
    )
    trainer.compile(
        optimizer=keras.optimizers.Adam(schedule),
        loss=loss,
        metrics=metrics,
        # Several batches per compiled call: the same updates, less Python between
        # them (what keeps an accelerator busy with a network this small).
        steps_per_execution=STEPS_PER_EXECUTION,
    )

    # Train, keeping the weights of the epoch with the best validation accuracy.
    args.out.mkdir(parents=True, exist_ok=True)
    best_weights = args.out / f".{args.arch}.best.weights.h5"
    history = trainer.fit(
        x_train,
        y_train,
        batch_size=args.batch_size,
        epochs=args.epochs,
        validation_data=(x_val, y_val),
        callbacks=[
            keras.callbacks.ModelCheckpoint(
                best_weights,
                monitor="val_accuracy",
                mode="max",
                save_best_only=True,
                save_weights_only=True,
            )
        ],
        verbose=2,
    ).history
    trainer.load_weights(best_weights)
    best_weights.unlink()
    best_epoch = int(np.argmax(history["val_accuracy"])) + 1

    # Save the bare network (no augmentation, no optimizer state): what the service loads.
    shipped = network.build(args.arch)
    shipped.set_weights(model.get_weights())
    model_path = args.out / f"{args.arch}.keras"
    shipped.save(model_path)
    wall_seconds = time.time() - started

    # Calibrate on the validation split: temperature, and the not-a-digit threshold.
    loaded = keras.saving.load_model(model_path, compile=False)
    calibration = calibrate(loaded.predict(x_val, batch_size=1000, verbose=0), y_val)
    print(f"calibration: {json.dumps(calibration)}")

    # Evaluate, once, on the test set.
    test = evaluate(loaded, mnist.test, calibration["temperature"])
    print(
        f"test accuracy {test['accuracy']:.4f} ({test['errors']} errors), loss {test['loss']:.4f}"
    )

    # The "whole" output that /read scores its candidates with, on the frozen network.
    whole, parameters = None, int(shipped.count_params())
    if not args.mnist_only:
        whole, parameters = wholes.add(
            model_path, training, args.whole_numbers, wholes.EPOCHS, args.seed
        )
    sha256 = data.sha256_of(model_path)
    card = {
        "name": args.arch,
        # The weights' hash in the version: two trainings on one day differ in it.
        "version": f"{args.arch}-{dt.date.today().isoformat()}-s{args.seed}-{sha256[:7]}",
        "file": model_path.name,
        "file_bytes": model_path.stat().st_size,
        "sha256": sha256,
        "parameters": parameters,
        "input": {
            "shape": list(network.INPUT_SHAPE),
            "dtype": "float32",
            "range": [0.0, 1.0],
            "polarity": "white ink on black",
            "layout": "digit fitted to 20x20, centred by centre of mass in 28x28 (as MNIST)",
        },
        "classes": [*range(network.NUM_CLASSES - 1), "not a digit"],
        "whole": whole,
        "calibration": calibration,
        "test": test,
        "validation_accuracy": float(history["val_accuracy"][best_epoch - 1]),
        "training": {
            "command": "python -m model.train " + " ".join(sys.argv[1:]),
            "architecture": args.arch,
            "teacher": _file_record(args.teacher),
            "start_from": _file_record(args.start_from),
            "epochs": args.epochs,
            "best_epoch": best_epoch,
            "batch_size": args.batch_size,
            "learning_rate": args.learning_rate,
            "augmentation": None
            if args.no_augment
            else "rotation ±10°, zoom ±10 % per axis, shift ±2 px",
            "images": sources,
            "fonts": None if args.mnist_only else sorted(augment.TRAINING_FONTS.values()),
            "seed": args.seed,
            "split_seed": args.split_seed,
            "training_images": len(y_train),
            "validation_images": len(y_val),
            "validation_split": len(validation.labels),  # MNIST digits held out
            "wall_seconds": round(wall_seconds, 1),
            "render_seconds": render_seconds,  # of the extras, wherever they were rendered
            "device": device_description(),
            "history": {k: [round(float(v), 5) for v in vs] for k, vs in history.items()},
        },
        "data": {
            "source": "MNIST (LeCun, Cortes, Burges), CC BY-SA 3.0",
            "sha256": mnist.checksums,
            **(
                {}
                if args.mnist_only
                else {
                    "real_handwriting": "pendigits and optdigits training splits "
                    "(Alpaydin et al., UCI, CC BY 4.0)",
                    "real_handwriting_sha256": realdigits.CHECKSUMS,
                }
            ),
        },
        "versions": versions(),
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
    }
    card["plots"] = save_plots(history, test["confusion_matrix"], args.out, args.arch)
    (args.out / CARD_NAME).write_text(json.dumps(card, indent=2) + "\n")
    print(f"wrote {model_path} and {args.out / CARD_NAME}")

    # Ship the LiteRT form the service runs, recorded in the card (make convert).
    if importlib.util.find_spec("tensorflow") is None:  # trained with JAX on an accelerator
        print("TensorFlow is not installed here: run `make convert` and "
              "`python -m model.quantize --ship` where it is, before committing")  # fmt: skip
        return json.loads((args.out / CARD_NAME).read_text())
    from app import inference

    litert = inference.ship(model_path)
    print(f"wrote {litert['output']} (LiteRT, {litert['max_abs_difference']:.1e} from Keras)")
    # And its int8 form, run where the CPU makes it faster (app.precision).
    from model import quantize

    int8 = quantize.Quantisation.of(model_path, mnist).ship()
    print(f"wrote {int8['file']} (LiteRT int8, MNIST test {int8['test']['accuracy']:.2%})")
    return json.loads((args.out / CARD_NAME).read_text())


def _file_record(path: Path | None) -> dict | None:
    """A network the run learnt from (``--teacher``, ``--start-from``), as the card names it."""
    return None if path is None else {"file": path.name, "sha256": data.sha256_of(path)}


def calibrate(outputs: np.ndarray, labels: np.ndarray) -> dict:
    """Temperature scaling on the validation digits, and the digit-score threshold
    that refuses REFUSE_SHARE of them; with what each does on validation data."""
    digits = labels < calibration.NUM_DIGITS
    outputs_digits, labels_digits = outputs[digits], labels[digits]
    temperature = calibration.fit_temperature(outputs_digits, labels_digits)
    scores = calibration.digit_score(outputs)
    threshold = float(np.quantile(scores[digits], REFUSE_SHARE))
    ece = {
        f"ece_{name}": round(
            calibration.expected_calibration_error(
                calibration.digit_probabilities(outputs_digits, t), labels_digits
            ),
            5,
        )
        for name, t in (("before", 1.0), ("after", temperature))
    }
    return {
        "temperature": round(temperature, 5),
        "reject_below": round(threshold, 6),
        "validation_digits": int(digits.sum()),
        "validation_non_digits": int((~digits).sum()),
        "validation_digits_refused": round(float((scores[digits] < threshold).mean()), 5),
        "validation_non_digits_accepted": round(float((scores[~digits] >= threshold).mean()), 5)
        if (~digits).any()
        else None,
        **ece,
    }


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        train(args)
    except (
        data.MnistDataError,
        realdigits.RealDigitsError,
        augment.MissingFontsError,
        saved_extras.ExtrasMismatchError,
    ) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
