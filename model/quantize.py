"""Int8 post-training quantisation of the shipped network, measured against its float form.

    python -m model.quantize [--count 100] [--calibration 1000] [--data DIR] [--ship]

Converts the ``.keras`` model to a full-integer LiteRT network (int8 weights and
activations, float input and output), calibrated on images of the training split
``model.train`` uses (never validation or test), and compares it with the shipped
float LiteRT network, both in ``app.engines.LiteRTEngine`` (XNNPACK, one thread):

- µs per image at batch 1 and batch 64 (best of 40 interleaved rounds);
- MNIST validation and test: accuracy, argmax agreement, the largest difference in
  calibrated probability and in digit score, the share refused;
- ``model.world``'s kinds (``--count`` per kind): accuracy, refusals, ECE, the
  share of non-digits answered, AUROC, each through the service's own code.

``--ship`` writes the int8 network beside the model (``digitnet.int8.tflite``) and
records it in the model card (``litert_int8``: its sha256, its source's, and its
largest difference from Keras's outputs on the probe batch, which the service checks
it against at startup), then measures. The service runs it where the CPU makes it
faster (``app.precision``). Needs TensorFlow (the train extra).
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import sys
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from app import inference
from app.config import DEFAULT_MODEL_PATH
from app.engines import LiteRTEngine, separated
from app.inference import DigitClassifier, load_classifier
from model import data, realdigits, world
from model.evaluate import as_network_input

VALIDATION_SIZE, SPLIT_SEED = 5000, 1  # model.train's defaults
ROUNDS = 40


def quantised(model_path: Path, calibration: np.ndarray) -> bytes:
    """The full-integer LiteRT form of the model, calibrated on these inputs."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import keras
    import tensorflow as tf

    model = separated(keras.saving.load_model(model_path, compile=False))
    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = lambda: (
        [calibration[i : i + 1]] for i in range(len(calibration))
    )
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    with warnings.catch_warnings():
        # The input stays float (quantised inside the network), so it has no statistics.
        warnings.filterwarnings("ignore", "Statistics for quantized inputs were expected")
        return converter.convert()


def ship(model_path: Path, flatbuffer: bytes, calibration: str, test: dict) -> dict:
    """Write the int8 form beside the model and record it in the model card, which
    must already record the float form of this very file (make convert), with its
    MNIST test figures (``agreement``'s)."""
    card_path = model_path.parent / inference.CARD_NAME
    card = json.loads(card_path.read_text())
    sha256 = inference.file_sha256(model_path)
    if card.get("sha256") != sha256 or card["litert"]["source_sha256"] != sha256:
        raise inference.ModelLoadError(f"{card_path} is not {model_path}'s: run make convert")
    expected = np.asarray(card["litert"]["probe"]["keras_outputs"], dtype=np.float32)
    import tensorflow as tf

    inference.record_litert(
        model_path,
        card,
        "litert_int8",
        flatbuffer,
        converter=f"tensorflow {tf.__version__}",
        quantisation="full integer: int8 weights and activations, float input and output",
        calibration=calibration,
        probe_seed=inference.PROBE_SEED,
        max_abs_difference_from_keras=inference.probe_difference(
            LiteRTEngine(flatbuffer), expected
        ),
        test={
            "accuracy": test["accuracy_int8"],
            "same_digit_as_float": test["argmax_agreement"],
            "refused": test["refused_int8"],
        },
    )
    return card["litert_int8"]


def speed(engines: dict[str, LiteRTEngine], images: np.ndarray) -> dict[str, float]:
    """µs per image for each engine at batch 1 and 64, best of interleaved rounds."""
    best: dict[str, float] = {}
    for _ in range(ROUNDS):
        for name, engine in engines.items():
            for batch, calls in ((images[:1], 200), (images[:64], 5)):
                started = time.perf_counter()
                for _ in range(calls):
                    engine(batch)
                per_image = (time.perf_counter() - started) / calls / len(batch) * 1e6
                key = f"{name}, batch {len(batch)}"
                best[key] = round(min(best.get(key, float("inf")), per_image), 1)
    return best


def agreement(float_net: DigitClassifier, int8_net: DigitClassifier, split: data.Split) -> dict:
    inputs = as_network_input(split.images)
    p_float, s_float = float_net.interpret(float_net.outputs(inputs))
    p_int8, s_int8 = int8_net.interpret(int8_net.outputs(inputs))
    return {
        "accuracy_float": float((p_float.argmax(1) == split.labels).mean()),
        "accuracy_int8": float((p_int8.argmax(1) == split.labels).mean()),
        "argmax_agreement": float((p_float.argmax(1) == p_int8.argmax(1)).mean()),
        "max_probability_difference": float(np.abs(p_float - p_int8).max()),
        "max_digit_score_difference": float(np.abs(s_float - s_int8).max()),
        "refused_float": float((s_float < float_net.reject_below).mean()),
        "refused_int8": float((s_int8 < int8_net.reject_below).mean()),
    }


@dataclass(frozen=True)
class Quantisation:
    """A model's int8 form, calibrated on training images, beside its float form."""

    model_path: Path
    flatbuffer: bytes
    calibration: str
    float_net: DigitClassifier
    int8_net: DigitClassifier
    validation: data.Split
    test: dict  # agreement() on MNIST's test set

    @classmethod
    def of(cls, model_path: Path, mnist: data.Mnist, count: int = 1000) -> Quantisation:
        training, validation = data.train_validation_split(mnist.train, VALIDATION_SIZE, SPLIT_SEED)
        chosen = np.random.default_rng(0).permutation(len(training.labels))[:count]
        flatbuffer = quantised(model_path, as_network_input(training.images[chosen]))
        float_net = load_classifier(model_path, engine="litert")
        int8_net = DigitClassifier(
            LiteRTEngine(flatbuffer),
            "litert-int8",
            float_net.model_path,
            float_net.sha256,
            float_net.card,
        )
        return cls(
            model_path,
            flatbuffer,
            f"{count} MNIST training-split images (seed 0)",
            float_net,
            int8_net,
            validation,
            agreement(float_net, int8_net, mnist.test),
        )

    def ship(self) -> dict:
        return ship(self.model_path, self.flatbuffer, self.calibration, self.test)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=DEFAULT_MODEL_PATH)
    parser.add_argument("--count", type=int, default=100, help="model.world digits per kind")
    parser.add_argument("--calibration", type=int, default=1000, help="training images")
    parser.add_argument("--data", help="folder with the MNIST .gz files (default: $MNIST_DIR)")
    parser.add_argument("--json", help="also write the report here")
    parser.add_argument(
        "--ship", action="store_true", help="write the int8 network beside the model, in its card"
    )
    args = parser.parse_args(argv)

    mnist = data.load(args.data)
    quantisation = Quantisation.of(args.model, mnist, args.calibration)
    float_net, int8_net = quantisation.float_net, quantisation.int8_net
    report: dict = {"int8_bytes": len(quantisation.flatbuffer)}
    report["us_per_image"] = speed(
        {"float": float_net.engine, "int8": int8_net.engine},
        as_network_input(quantisation.validation.images),
    )
    report["validation"] = agreement(float_net, int8_net, quantisation.validation)
    report["test"] = quantisation.test
    if args.ship:
        print(json.dumps(quantisation.ship()))

    from model.augment import fonts
    from model.uploads import held_out_digits

    digits, sets = held_out_digits(mnist), realdigits.load()

    def samples():
        return itertools.chain(
            world.uploaded(digits, args.count, 0),
            world.rendered(digits, args.count, 0),
            world.real(sets, args.count),
            world.mnist_test(mnist, args.count),
            world.not_digits(args.count, 0, digits.images, fonts(training=False)),
        )

    report["world_float"] = world.measure(samples(), world.service_reader(float_net))
    report["world_int8"] = world.measure(samples(), world.service_reader(int8_net))
    print(json.dumps({k: v for k, v in report.items() if not k.startswith("world")}, indent=2))
    print(f"\n{'kind':<40} {'float':>40}   int8")
    for kind in report["world_float"]:
        print(
            f"{kind:<40} {json.dumps(report['world_float'][kind]):>40}   "
            f"{json.dumps(report['world_int8'][kind])}"
        )
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
