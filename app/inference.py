"""Run the network: the saved Keras model in, probabilities out.

The network is trained and saved with Keras (``.keras``), but served through LiteRT
(TFLite): ``model.predict`` costs ~30 ms a call, the LiteRT interpreter ~0.1 ms an
image, and LiteRT installs without TensorFlow (~60 MB instead of ~1.3 GB).

The LiteRT form ships beside the ``.keras`` file (``digitnet.tflite``), written by
``python -m app.inference convert MODEL`` (``make convert``; ``model.train`` runs it
too). That command records in the model card the file's sha256, the sha256 of the
``.keras`` file it came from, and the outputs Keras computed on a fixed probe batch.
At startup the service checks the shipped file against that record (outputs to
1e-5), so the check needs no TensorFlow. A model without a shipped LiteRT form
(a mounted one, say) is converted at first start, where TensorFlow is installed, in
a child process that imports TensorFlow and exits; the conversion is checked against
Keras and cached under the model's sha256. ``INFERENCE_ENGINE=keras`` runs the Keras
model itself. Where TensorFlow is missing, asking for either stops the start with
one error that says what to install.

No web framework in here.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.util
import json
import logging
import os
import subprocess
import sys
import tempfile
import threading
import time
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import numpy as np

from app import calibration

INPUT_SHAPE = (28, 28, 1)
TOLERANCE = 1e-5
PROBE_SEED = 20261124
CONVERSION_TIMEOUT_S = 300
CARD_NAME = "model_card.json"
# What a runtime without TensorFlow lacks, and how to get it.
TRAINING_FRAMEWORK = (
    "TensorFlow and Keras, which are not installed here; install the project's train "
    "extra (pip install '.[train]' in a checkout)"
)

logger = logging.getLogger(__name__)


class ModelLoadError(RuntimeError):
    """The model file is missing, corrupt, or its conversion failed."""


class FrameworkMissingError(ModelLoadError):
    """Something was asked of Keras or TensorFlow where they are not installed."""

    def __init__(self, purpose: str):
        super().__init__(f"{purpose} needs {TRAINING_FRAMEWORK}")


class Engine(Protocol):
    def __call__(self, batch: np.ndarray) -> np.ndarray: ...


@dataclass
class DigitClassifier:
    """Probabilities for batches of 28×28×1 float32 inputs. Thread-safe."""

    engine: Engine
    engine_name: str
    model_path: Path
    sha256: str
    card: dict = field(default_factory=dict)
    load_seconds: float = 0.0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def name(self) -> str:
        return str(self.card.get("name", self.model_path.stem))

    @property
    def version(self) -> str:
        return str(self.card.get("version", f"{self.model_path.stem}-{self.sha256[:12]}"))

    def __post_init__(self) -> None:
        fitted = self.card.get("calibration", {})
        self.temperature = float(fitted.get("temperature", 1.0))
        # A model without a card of its own (a mounted one) refuses nothing.
        self.reject_below = float(fitted.get("reject_below", 0.0))

    def outputs(self, batch: np.ndarray) -> np.ndarray:
        """(n, 28, 28, 1) float32 in [0, 1] -> the network's (n, 11) softmax outputs."""
        batch = np.ascontiguousarray(batch, dtype=np.float32).reshape((-1, *INPUT_SHAPE))
        with self._lock:
            return self.engine(batch)

    def interpret(self, outputs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Network outputs -> (n, 10) calibrated digit probabilities, (n,) digit scores."""
        return (
            calibration.digit_probabilities(outputs, self.temperature),
            calibration.digit_score(outputs),
        )

    def predict(self, batch: np.ndarray) -> np.ndarray:
        """(n, 28, 28, 1) float32 in [0, 1] -> (n, 10) calibrated digit probabilities."""
        return self.interpret(self.outputs(batch))[0]

    def warm_up(self) -> None:
        for size in (1, 2):
            self.outputs(np.zeros((size, *INPUT_SHAPE), dtype=np.float32))


class LiteRTEngine:
    """The LiteRT interpreter, one per batch size in powers of two up to 64.

    A batch of 13 runs as 8 + 4 + 1: no padding computed, no tensor reallocated.
    """

    LARGEST = 64

    def __init__(self, flatbuffer: bytes):
        from ai_edge_litert.interpreter import Interpreter

        self._runners = {}
        size = 1
        while size <= self.LARGEST:
            interpreter = Interpreter(model_content=flatbuffer, num_threads=1)
            input_index = interpreter.get_input_details()[0]["index"]
            interpreter.resize_tensor_input(input_index, [size, *INPUT_SHAPE])
            interpreter.allocate_tensors()
            output_index = interpreter.get_output_details()[0]["index"]
            self._runners[size] = (interpreter, input_index, output_index)
            size *= 2

    def _run(self, batch: np.ndarray) -> np.ndarray:
        interpreter, input_index, output_index = self._runners[len(batch)]
        interpreter.set_tensor(input_index, batch)
        interpreter.invoke()
        return interpreter.get_tensor(output_index).copy()

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        results, start = [], 0
        while start < len(batch):
            remaining = len(batch) - start
            size = min(self.LARGEST, 1 << (remaining.bit_length() - 1))
            results.append(self._run(batch[start : start + size]))
            start += size
        if not results:
            interpreter, _, output_index = self._runners[1]
            width = interpreter.get_tensor(output_index).shape[-1]
            return np.zeros((0, width), dtype=np.float32)
        return results[0] if len(results) == 1 else np.concatenate(results)


class KerasEngine:
    """The Keras model itself, called as a compiled function (not ``predict``)."""

    def __init__(self, model_path: Path):
        keras = _import_keras("INFERENCE_ENGINE=keras")
        self.model = keras.saving.load_model(model_path, compile=False)

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        return np.asarray(self.model.predict_on_batch(batch), dtype=np.float32)


def has_training_framework() -> bool:
    """Whether Keras and TensorFlow are installed (found, not imported: that takes seconds)."""
    return all(importlib.util.find_spec(name) is not None for name in ("keras", "tensorflow"))


def _import_keras(purpose: str):
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    try:
        import keras
        import tensorflow  # noqa: F401  (Keras's backend here)
    except ImportError:
        raise FrameworkMissingError(purpose) from None
    return keras


def file_sha256(path: Path) -> str:
    with path.open("rb") as stream:
        return hashlib.file_digest(stream, "sha256").hexdigest()


def check_model_file(path: Path) -> str:
    """Fail early and clearly on a missing or corrupt ``.keras`` file; return its sha256."""
    if not path.is_file():
        raise ModelLoadError(f"model file {path} not found (set MODEL_PATH)")
    try:
        with zipfile.ZipFile(path) as archive:
            names = set(archive.namelist())
            if "config.json" not in names or not any(n.endswith(".weights.h5") for n in names):
                raise ModelLoadError(f"model file {path} is not a Keras .keras archive")
            if archive.testzip() is not None:
                raise ModelLoadError(f"model file {path} is corrupt (bad CRC)")
            config = json.loads(archive.read("config.json"))
    except (zipfile.BadZipFile, OSError, ValueError) as error:
        raise ModelLoadError(f"model file {path} is corrupt ({error})") from None
    if not isinstance(config, dict) or "class_name" not in config:
        raise ModelLoadError(f"model file {path} has no model config")
    return file_sha256(path)


def probe_batch() -> np.ndarray:
    """Inputs to compare engines on: blank, noise, and random strokes."""
    rng = np.random.default_rng(PROBE_SEED)
    noise = rng.random((6, *INPUT_SHAPE), dtype=np.float32)
    sparse = (rng.random((6, *INPUT_SHAPE)) > 0.8).astype(np.float32)
    return np.concatenate([np.zeros((1, *INPUT_SHAPE), np.float32), noise, sparse])


def _convert(model_path: Path) -> tuple[bytes, np.ndarray, float, str]:
    """The LiteRT flatbuffer, Keras's outputs on the probe batch, LiteRT's largest
    difference from them, and the converter's version. Imports TensorFlow."""
    keras = _import_keras(f"converting {model_path} to LiteRT")
    import tensorflow as tf

    model = keras.saving.load_model(model_path, compile=False)
    flatbuffer = tf.lite.TFLiteConverter.from_keras_model(model).convert()
    expected = np.asarray(model.predict_on_batch(probe_batch()), dtype=np.float32)
    difference = _difference(LiteRTEngine(flatbuffer), expected)
    if not difference <= TOLERANCE:
        raise ModelLoadError(
            f"LiteRT differs from Keras by {difference:.2e} (> {TOLERANCE}); "
            "set INFERENCE_ENGINE=keras"
        )
    return flatbuffer, expected, difference, f"tensorflow {tf.__version__}"


def _difference(engine: Engine, expected: np.ndarray) -> float:
    """The largest difference between the engine's outputs on the probe batch and these."""
    got = engine(probe_batch())
    if got.shape != expected.shape:
        return float("inf")
    return float(np.abs(expected - got).max())


def _write_atomically(destination: Path, content: bytes) -> None:
    destination.parent.mkdir(parents=True, exist_ok=True)
    partial = destination.with_suffix(f".{os.getpid()}.part")
    partial.write_bytes(content)
    partial.replace(destination)


def convert(model_path: Path, destination: Path) -> dict:
    """Convert a .keras model to LiteRT, checked against Keras, into ``destination``
    (the conversion cache). Imports TensorFlow."""
    flatbuffer, _, difference, _ = _convert(model_path)
    _write_atomically(destination, flatbuffer)
    return {"max_abs_difference": difference, "bytes": len(flatbuffer)}


def ship(model_path: Path) -> dict:
    """Write MODEL's LiteRT form beside it (``.tflite``) and record it in the model card:
    its sha256, the source's, and Keras's outputs on the probe batch, which the
    service checks the shipped file against at startup. Imports TensorFlow."""
    sha256 = check_model_file(model_path)
    card_path = model_path.parent / CARD_NAME
    if card_path.is_file():
        card = json.loads(card_path.read_text())
        if card.get("sha256") != sha256:
            raise ModelLoadError(f"{card_path} describes another model file than {model_path}")
    else:
        card = {"file": model_path.name, "sha256": sha256}
    flatbuffer, expected, difference, converter = _convert(model_path)
    destination = model_path.with_suffix(".tflite")
    _write_atomically(destination, flatbuffer)
    card["litert"] = {
        "file": destination.name,
        "bytes": len(flatbuffer),
        "sha256": hashlib.sha256(flatbuffer).hexdigest(),
        "source_sha256": sha256,
        "converter": converter,
        "max_abs_difference_from_keras": difference,
        "probe": {"seed": PROBE_SEED, "keras_outputs": expected.tolist()},
    }
    _write_atomically(card_path, (json.dumps(card, indent=2) + "\n").encode())
    return {"output": str(destination), "card": str(card_path), "max_abs_difference": difference}


def shipped_litert(model_path: Path, sha256: str, card: dict) -> bytes | None:
    """The LiteRT form shipped beside the model, if the card records one made from
    this very file; raises ModelLoadError if the file is not the one recorded."""
    record = card.get("litert")
    if not isinstance(record, dict) or record.get("source_sha256") != sha256:
        return None
    path = model_path.parent / str(record.get("file"))
    try:
        flatbuffer = path.read_bytes()
    except OSError:
        logger.warning("%s, recorded in the model card, is missing", path)
        return None
    if hashlib.sha256(flatbuffer).hexdigest() != record.get("sha256"):
        raise ModelLoadError(
            f"{path} is not the file the model card records (sha256 differs); "
            f"write it again with: python -m app.inference convert {model_path}"
        )
    return flatbuffer


def check_shipped(engine: Engine, card: dict) -> float:
    """The shipped engine's largest difference from the outputs Keras recorded; raises
    ModelLoadError over TOLERANCE."""
    probe = card["litert"].get("probe", {})
    if probe.get("seed") != PROBE_SEED:
        raise ModelLoadError("the model card's probe outputs are for another probe batch")
    difference = _difference(engine, np.asarray(probe["keras_outputs"], dtype=np.float32))
    if not difference <= TOLERANCE:
        raise ModelLoadError(
            f"the shipped LiteRT model differs from the outputs Keras recorded by "
            f"{difference:.2e} (> {TOLERANCE})"
        )
    return difference


def _cache_dir(model_path: Path, configured: Path | None) -> Path:
    folder = configured or model_path.parent / ".cache"
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe = folder / f".write-test-{os.getpid()}"
        probe.touch()
        probe.unlink()
        return folder
    except OSError:
        fallback = Path(tempfile.gettempdir()) / "digits-model-cache"
        logger.warning("model cache %s is not writable; using %s", folder, fallback)
        fallback.mkdir(parents=True, exist_ok=True)
        return fallback


def converted_path(model_path: Path, sha256: str, cache_dir: Path | None = None) -> Path:
    name = f"{model_path.stem}-{sha256[:16]}.tflite"
    baked = (cache_dir or model_path.parent / ".cache") / name
    if baked.is_file():  # converted at image build: a read-only cache is fine to read
        return baked
    return _cache_dir(model_path, cache_dir) / name


def ensure_converted(model_path: Path, sha256: str, cache_dir: Path | None = None) -> Path:
    """The cached LiteRT file for this exact model, converting it in a child process if needed."""
    target = converted_path(model_path, sha256, cache_dir)
    if target.is_file():
        return target
    if not has_training_framework():
        raise FrameworkMissingError(
            f"{model_path} has no LiteRT form shipped beside it (write one with "
            f"`python -m app.inference convert {model_path}`), and converting it here"
        )
    logger.info("converting %s to LiteRT (first start with this model)", model_path)
    command = [
        *(sys.executable, "-m", "app.inference", "convert"),
        *(str(model_path), "--output", str(target)),
    ]
    try:
        result = subprocess.run(
            command,
            capture_output=True,
            text=True,
            timeout=CONVERSION_TIMEOUT_S,
            cwd=Path(__file__).resolve().parent.parent,
        )
    except subprocess.TimeoutExpired:
        raise ModelLoadError(
            f"converting {model_path} took over {CONVERSION_TIMEOUT_S} s"
        ) from None
    if result.returncode != 0 or not target.is_file():
        last_line = (result.stderr.strip().splitlines() or ["no output"])[-1]
        raise ModelLoadError(f"could not convert {model_path}: {last_line}")
    return target


def read_card(model_path: Path, sha256: str) -> dict:
    """The model card beside the model, if it describes this very file."""
    card_path = model_path.parent / CARD_NAME
    try:
        card = json.loads(card_path.read_text())
    except (OSError, ValueError):
        return {}
    if card.get("sha256") not in (None, sha256):
        logger.warning("%s describes another model file; ignoring it", card_path)
        return {}
    return card


def prepare(model_path: Path, *, engine: str = "litert", cache_dir: Path | None = None) -> str:
    """Check the model file and that what the engine needs is there; return its sha256.

    Cheap when the LiteRT form is shipped or cached. ``python -m app`` calls it once
    before starting workers, so they all start warm, and a runtime without TensorFlow
    stops here with one clear line.
    """
    if engine not in ("litert", "keras"):
        raise ModelLoadError(f"unknown inference engine {engine!r} (litert or keras)")
    sha256 = check_model_file(model_path)
    if engine == "keras":
        if not has_training_framework():
            raise FrameworkMissingError("INFERENCE_ENGINE=keras")
    elif shipped_litert(model_path, sha256, read_card(model_path, sha256)) is None:
        ensure_converted(model_path, sha256, cache_dir)
    return sha256


def load_classifier(
    model_path: Path, *, engine: str = "litert", cache_dir: Path | None = None
) -> DigitClassifier:
    """Load, check and warm up the model (converting it if needed). Raises ModelLoadError."""
    started = time.perf_counter()
    model_path = Path(model_path)
    sha256 = prepare(model_path, engine=engine, cache_dir=cache_dir)
    card = read_card(model_path, sha256)
    if engine == "litert":
        flatbuffer = shipped_litert(model_path, sha256, card)
        if flatbuffer is not None:
            runner: Engine = LiteRTEngine(flatbuffer)
            check_shipped(runner, card)
        else:
            runner = LiteRTEngine(converted_path(model_path, sha256, cache_dir).read_bytes())
    else:
        try:
            runner = KerasEngine(model_path)
        except ModelLoadError:
            raise
        except Exception as error:
            raise ModelLoadError(f"Keras could not load {model_path}: {error}") from None
    classifier = DigitClassifier(
        engine=runner,
        engine_name=engine,
        model_path=model_path,
        sha256=sha256,
        card=card,
    )
    classifier.warm_up()
    classifier.load_seconds = time.perf_counter() - started
    return classifier


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="The LiteRT form of a Keras model.")
    commands = parser.add_subparsers(dest="command", required=True)
    to_litert = commands.add_parser(
        "convert",
        help="write MODEL's LiteRT form beside it and record it in the model card "
        "(needs TensorFlow)",
    )
    to_litert.add_argument("model", type=Path)
    to_litert.add_argument(
        "--output", type=Path, help="write only this file (the conversion cache), no card"
    )
    check = commands.add_parser("check", help="load MODEL as the service does, and check it")
    check.add_argument("model", type=Path)
    args = parser.parse_args(argv)
    try:
        if args.command == "check":
            classifier = load_classifier(args.model)
            report = {"version": classifier.version, "load_seconds": classifier.load_seconds}
        elif args.output:
            report = {"output": str(args.output), **convert(args.model, args.output)}
        else:
            report = ship(args.model)
    except ModelLoadError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    print(json.dumps(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
