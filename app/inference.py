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
Keras and cached under the model's sha256. The card may also record an int8 form
(``app.precision``: run where the CPU makes it faster), checked against the same
Keras outputs within the distance recorded when it was made. ``INFERENCE_ENGINE=keras``
runs the Keras model itself. Where TensorFlow is missing, asking for either stops the
start with one error that says what to install. No web framework in here.
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

import numpy as np

from app import calibration, precision
from app.engines import INPUT_SHAPE, Engine, KerasEngine, LiteRTEngine, separated

TOLERANCE = 1e-5
INT8_STEP = 1 / 256  # one step of an int8 network's softmax output
PROBE_SEED = 20261124
CONVERSION_TIMEOUT_S = 300
CARD_NAME = "model_card.json"
# What writes each LiteRT form the card records (``precision.CARD_KEYS``' values).
WRITTEN_BY = {
    "litert": "python -m app.inference convert {model}",
    "litert_int8": "python -m model.quantize --ship --model {model}",
}
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
        """(n, 28, 28, 1) float32 in [0, 1] -> the network's (n, 11) or (n, 12) outputs."""
        batch = np.ascontiguousarray(batch, dtype=np.float32).reshape((-1, *INPUT_SHAPE))
        with self._lock:
            return self.engine(batch)

    def interpret(
        self, outputs: np.ndarray, candidates: bool = False
    ) -> tuple[np.ndarray, np.ndarray]:
        """Network outputs -> (n, 10) calibrated digit probabilities, (n,) digit scores
        (for /read's ``candidates``, ``calibration.candidate_score``)."""
        score = calibration.candidate_score if candidates else calibration.digit_score
        return calibration.digit_probabilities(outputs, self.temperature), score(outputs)

    def predict(self, batch: np.ndarray) -> np.ndarray:
        """(n, 28, 28, 1) float32 in [0, 1] -> (n, 10) calibrated digit probabilities."""
        return self.interpret(self.outputs(batch))[0]

    def warm_up(self) -> None:
        for size in (1, 2):
            self.outputs(np.zeros((size, *INPUT_SHAPE), dtype=np.float32))


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
    flatbuffer = tf.lite.TFLiteConverter.from_keras_model(separated(model)).convert()
    expected = np.asarray(model.predict_on_batch(probe_batch()), dtype=np.float32)
    difference = probe_difference(LiteRTEngine(flatbuffer), expected)
    if not difference <= TOLERANCE:
        raise ModelLoadError(
            f"LiteRT differs from Keras by {difference:.2e} (> {TOLERANCE}); "
            "set INFERENCE_ENGINE=keras"
        )
    return flatbuffer, expected, difference, f"tensorflow {tf.__version__}"


def probe_difference(engine: Engine, expected: np.ndarray) -> float:
    """The largest difference between the engine's outputs on the probe batch and these."""
    got = engine(probe_batch())
    if got.shape != expected.shape:
        return float("inf")
    return float(np.abs(expected - got).max())


def write_atomically(destination: Path, content: bytes) -> None:
    destination.parent.mkdir(parents=True, exist_ok=True)
    partial = destination.with_suffix(f".{os.getpid()}.part")
    partial.write_bytes(content)
    partial.replace(destination)


def convert(model_path: Path, destination: Path) -> dict:
    """Convert a .keras model to LiteRT, checked against Keras, into ``destination``
    (the conversion cache). Imports TensorFlow."""
    flatbuffer, _, difference, _ = _convert(model_path)
    write_atomically(destination, flatbuffer)
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
    destination = record_litert(
        model_path,
        card,
        "litert",
        flatbuffer,
        converter=converter,
        max_abs_difference_from_keras=difference,
        probe={"seed": PROBE_SEED, "keras_outputs": expected.tolist()},
    )
    return {"output": str(destination), "card": str(card_path), "max_abs_difference": difference}


def record_litert(model_path: Path, card: dict, key: str, flatbuffer: bytes, **details) -> Path:
    """Write a LiteRT form beside the model (``.tflite``, or ``.int8.tflite`` for
    ``litert_int8``) and record it in the model card under ``key``: its file, size and
    sha256, the sha256 of the model it came from (``card["sha256"]``), and ``details``."""
    destination = model_path.with_suffix(".int8.tflite" if key == "litert_int8" else ".tflite")
    write_atomically(destination, flatbuffer)
    card[key] = {
        "file": destination.name,
        "bytes": len(flatbuffer),
        "sha256": hashlib.sha256(flatbuffer).hexdigest(),
        "source_sha256": card["sha256"],
        **details,
    }
    write_atomically(model_path.parent / CARD_NAME, (json.dumps(card, indent=2) + "\n").encode())
    return destination


def shipped_litert(model_path: Path, sha256: str, card: dict, key: str = "litert") -> bytes | None:
    """The LiteRT form shipped beside the model under the card's ``key`` (``litert``,
    ``litert_int8``), if the card records one made from this very file; raises
    ModelLoadError if the file is not the one recorded."""
    record = card.get(key)
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
            f"write it again with: {WRITTEN_BY[key].format(model=model_path)}"
        )
    return flatbuffer


def allowed_difference(card: dict, key: str = "litert") -> float:
    """How far the LiteRT form under ``key`` may lie from Keras's outputs on the probe
    batch: TOLERANCE for float32; for int8, the distance recorded when it was made
    plus one step of its output."""
    if key == "litert":
        return TOLERANCE
    return float(card[key]["max_abs_difference_from_keras"]) + INT8_STEP


def check_shipped(engine: Engine, card: dict, key: str = "litert") -> float:
    """The shipped engine's largest difference from the outputs Keras recorded; raises
    ModelLoadError over ``allowed_difference``."""
    probe = card["litert"].get("probe", {})
    if probe.get("seed") != PROBE_SEED or card[key].get("probe_seed", PROBE_SEED) != PROBE_SEED:
        raise ModelLoadError("the model card's probe outputs are for another probe batch")
    difference = probe_difference(engine, np.asarray(probe["keras_outputs"], dtype=np.float32))
    allowed = allowed_difference(card, key)
    if not difference <= allowed:
        raise ModelLoadError(
            f"the shipped LiteRT model ({card[key].get('file')}) differs from the outputs "
            f"Keras recorded by {difference:.2e} (> {allowed:.2e})"
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


@dataclass(frozen=True)
class _Found:
    """What a model needs to run: its file's sha256, its card, the engine chosen for
    it, and the LiteRT form to run (None for Keras), shipped beside it or converted."""

    sha256: str
    card: dict
    engine: str
    flatbuffer: bytes | None = None
    shipped: bool = False


def _find(model_path: Path, engine: str, cache_dir: Path | None) -> _Found:
    """Check the model file, choose the engine, and find what it runs, converting the
    model if it has no shipped LiteRT form (``ensure_converted``)."""
    if engine not in precision.ENGINES:
        choices = ", ".join(precision.ENGINES)
        raise ModelLoadError(f"unknown inference engine {engine!r} (one of {choices})")
    sha256 = check_model_file(model_path)
    card = read_card(model_path, sha256)
    engine = precision.choose(engine, card, sha256, model_path.parent)
    if engine == "keras":
        if not has_training_framework():
            raise FrameworkMissingError("INFERENCE_ENGINE=keras")
        return _Found(sha256, card, engine)
    flatbuffer = shipped_litert(model_path, sha256, card, precision.CARD_KEYS[engine])
    if flatbuffer is not None:
        return _Found(sha256, card, engine, flatbuffer, shipped=True)
    if engine == "litert-int8":
        raise ModelLoadError(
            f"INFERENCE_ENGINE=litert-int8: the model card records no int8 form of "
            f"{model_path} (write one with: {WRITTEN_BY['litert_int8'].format(model=model_path)})"
        )
    converted = ensure_converted(model_path, sha256, cache_dir).read_bytes()
    return _Found(sha256, card, engine, converted)


def prepare(model_path: Path, *, engine: str = "auto", cache_dir: Path | None = None) -> str:
    """Check the model file and that what the engine needs is there; return its sha256.

    Cheap when the LiteRT form is shipped or cached. ``python -m app`` calls it once
    before starting workers, so they all start warm, and a runtime without TensorFlow
    stops here with one clear line.
    """
    return _find(model_path, engine, cache_dir).sha256


def load_classifier(
    model_path: Path, *, engine: str = "auto", cache_dir: Path | None = None
) -> DigitClassifier:
    """Load, check and warm up the model (converting it if needed). Raises ModelLoadError.
    ``engine``: one of ``precision.ENGINES``; ``auto`` picks float32 or int8 for the CPU."""
    started = time.perf_counter()
    model_path = Path(model_path)
    found = _find(model_path, engine, cache_dir)
    if found.flatbuffer is not None:
        runner: Engine = LiteRTEngine(found.flatbuffer)
        if found.shipped:
            check_shipped(runner, found.card, precision.CARD_KEYS[found.engine])
    else:
        try:
            keras = _import_keras("INFERENCE_ENGINE=keras")
            runner = KerasEngine(keras.saving.load_model(model_path, compile=False))
        except ModelLoadError:
            raise
        except Exception as error:
            raise ModelLoadError(f"Keras could not load {model_path}: {error}") from None
    classifier = DigitClassifier(
        engine=runner,
        engine_name=found.engine,
        model_path=model_path,
        sha256=found.sha256,
        card=found.card,
    )
    classifier.warm_up()
    classifier.load_seconds = time.perf_counter() - started
    return classifier


def load_configured() -> DigitClassifier:
    """The classifier the service's settings name (MODEL_PATH, INFERENCE_ENGINE,
    MODEL_CACHE_DIR), for tools that read as the service does."""
    from app.config import get_settings

    settings = get_settings()
    return load_classifier(
        settings.model_path, engine=settings.inference_engine, cache_dir=settings.model_cache_dir
    )


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
    check = commands.add_parser(
        "check", help="load MODEL as the service does, and check every LiteRT form shipped"
    )
    check.add_argument("model", type=Path)
    args = parser.parse_args(argv)
    try:
        if args.command == "check":
            classifier = load_classifier(args.model)
            report = {
                "version": classifier.version,
                "engine": classifier.engine_name,
                "load_seconds": classifier.load_seconds,
            }
            if precision.has_int8_form(classifier.card, classifier.sha256, args.model.parent):
                # Check the other shipped form too: an image may run on another CPU.
                other = {"litert": "litert-int8", "litert-int8": "litert"}[classifier.engine_name]
                report["also_checked"] = load_classifier(args.model, engine=other).engine_name
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
