"""Where one request's time goes, piece by piece, in µs per image.

    python -m bench.components [--model PATH] [--seconds 0.2]

Decoding, the service's preprocessing (the fast path for small clean PNGs as
the service takes it, the general path whole and step by step, a photo's steps
on its first reading at 200 px where the service keeps it) on the 28×28
PNG and the ~300 px JPEG photo of bench/inputs.py, the fast path on 20
different 28×28 PNGs read together as a micro-batch reads them and one by one,
the LiteRT classifier the service runs at batch 1 and batch 32, Keras
``model.predict`` and ``predict_on_batch`` as a naive server calls them, and how
far LiteRT's probabilities are from Keras's. Each figure is the median of 7 timed repeats
(each repeat runs the call for about ``--seconds``), per image.
Writes bench/results/components-latest.json.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image

from app import fast_path, memory, precision, preprocessing
from app.config import DEFAULT_MODEL_PATH
from app.inference import load_classifier, probe_batch
from bench.inputs import training_pngs, write_inputs
from bench.system import CpuWatch

RESULTS_DIR = Path(__file__).resolve().parent / "results"
REPEATS = 7
MAX_DISTURBANCE = 10.0  # % of a core other processes may take while a step is timed
ATTEMPTS = 4
MICRO_BATCH = 20  # PNGs a micro-batch holds at 64 connections (docs/performance.md)


def per_call_us(function: Callable[[], object], seconds: float) -> dict[str, float]:
    """Median and best µs per call over REPEATS repeats of about ``seconds`` each."""
    function()
    started, calls = time.perf_counter(), 0
    while calls < 1 or time.perf_counter() - started < seconds / 4:
        function()
        calls += 1
    number = max(1, round(seconds * calls / (time.perf_counter() - started)))
    times = []
    for _ in range(REPEATS):
        started = time.perf_counter()
        for _ in range(number):
            function()
        times.append((time.perf_counter() - started) / number * 1e6)
    return {"median_us": statistics.median(times), "min_us": min(times), "calls": number}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", type=Path, default=None, help="default: $MODEL_PATH, shipped")
    parser.add_argument("--seconds", type=float, default=0.2, help="per timed repeat")
    args = parser.parse_args(argv)
    model_path = Path(args.model or os.environ.get("MODEL_PATH") or DEFAULT_MODEL_PATH)
    if not model_path.is_file():
        print(f"model {model_path} not found (set MODEL_PATH or --model)", file=sys.stderr)
        return 2

    tuned = memory.tune_malloc()  # as every service worker does at startup
    print(f"malloc settings as in the service: {tuned or 'none (not glibc, or set by env)'}")
    with tempfile.TemporaryDirectory(prefix="digits-components-") as folder:
        inputs, description = write_inputs(Path(folder))
        png = inputs["png"].path.read_bytes()
        jpeg = inputs["jpeg"].path.read_bytes()

    classifiers = {"float32": load_classifier(model_path, engine="litert")}
    if precision.has_int8_form(
        classifiers["float32"].card, classifiers["float32"].sha256, model_path.parent
    ):
        classifiers["int8"] = load_classifier(model_path, engine="litert-int8")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import keras

    model = keras.saving.load_model(model_path, compile=False)

    rows: list[tuple[str, float, dict]] = []

    def measure(name: str, function: Callable[[], object], per: int = 1) -> None:
        """Time a step; again (keeping the quietest) while other processes took CPU."""
        attempts = []
        for _ in range(ATTEMPTS):
            with CpuWatch([]) as watch:
                timing = per_call_us(function, args.seconds)
            timing["other_cpu_percent"] = watch.other_cpu_percent
            attempts.append(timing)
            if watch.other_cpu_percent <= MAX_DISTURBANCE:
                break
        timing = min(attempts, key=lambda t: t["other_cpu_percent"])
        rows.append((name, timing["median_us"] / per, timing))
        flag = f"  (others took {timing['other_cpu_percent']}% of a core)" * (
            timing["other_cpu_percent"] > MAX_DISTURBANCE
        )
        print(f"  {name:<58} {timing['median_us'] / per:>10.1f} µs{flag}", flush=True)

    limits = preprocessing.Limits()
    print("decoding", flush=True)
    measure("PNG 28×28: Image.open + load", lambda: Image.open(io.BytesIO(png)).load())
    measure("JPEG 300 px: Image.open + load", lambda: Image.open(io.BytesIO(jpeg)).load())

    print("preprocessing (app.preprocessing)", flush=True)
    for label, data in (("PNG 28×28", png), ("JPEG 300 px", jpeg)):
        measure(
            f"{label}: fast_path.preprocess, as the service",
            lambda d=data: fast_path.preprocess(d),
        )
        measure(f"{label}: preprocess (all steps)", lambda d=data: preprocessing.preprocess(d))
        measure(f"{label}: ↳ open_image (header)", lambda d=data: preprocessing.open_image(d))
        measure(
            f"{label}: ↳ decode",
            lambda d=data: preprocessing.decode(preprocessing.open_image(d, limits)),
        )
        opened = preprocessing.open_image(data, limits)
        decoded = preprocessing.decode(opened)
        if preprocessing.is_photo(opened) and max(decoded.size) > preprocessing.GLANCE_SIZE:
            glanced = preprocessing.glance(decoded)
            read = preprocessing.input_and_ink(decoded, photo=True)[1]
            if read.shape == preprocessing.grey_levels(glanced).shape:
                # The service keeps the photo's first reading: its steps are the glance's.
                name = f"{label}: ↳ glance (to {preprocessing.GLANCE_SIZE} px)"
                measure(name, lambda i=decoded: preprocessing.glance(i))
                decoded = glanced
        measure(f"{label}: ↳ grey_levels", lambda i=decoded: preprocessing.grey_levels(i))
        grey = preprocessing.grey_levels(decoded)
        measure(f"{label}: ↳ ink_map", lambda g=grey: preprocessing.ink_map(g))
        ink = preprocessing.ink_map(grey)
        measure(f"{label}: ↳ fit_to_mnist", lambda k=ink: preprocessing.fit_to_mnist(k))

    # A micro-batch's PNGs under load (~20 at 64 connections) read together, as the
    # service reads them, and the same PNGs one by one.
    batch_pngs = training_pngs(MICRO_BATCH)
    measure(
        f"{MICRO_BATCH} PNGs 28×28: fast_path.inputs_and_inks, together, per image",
        lambda: fast_path.inputs_and_inks(batch_pngs, limits),
        per=MICRO_BATCH,
    )
    measure(
        f"{MICRO_BATCH} PNGs 28×28: fast_path.input_and_ink, one by one, per image",
        lambda: [fast_path.input_and_ink(data, limits) for data in batch_pngs],
        per=MICRO_BATCH,
    )

    one = preprocessing.preprocess(png)[np.newaxis]
    photo_input = preprocessing.preprocess(jpeg)[np.newaxis]
    batch = np.repeat(np.concatenate([one, photo_input]), 16, axis=0)  # 32 images
    print("network", flush=True)
    for form, classifier in classifiers.items():
        measure(
            f"DigitClassifier.predict (LiteRT {form}), batch 1", lambda c=classifier: c.predict(one)
        )
        measure(
            f"DigitClassifier.predict (LiteRT {form}), batch 32, per image",
            lambda c=classifier: c.predict(batch),
            per=32,
        )
    measure("Keras model.predict, batch 1", lambda: model.predict(one, verbose=0))
    measure("Keras model.predict_on_batch, batch 1", lambda: model.predict_on_batch(one))
    measure(
        "Keras model.predict_on_batch, batch 32, per image",
        lambda: model.predict_on_batch(batch),
        per=32,
    )

    compared = np.concatenate([probe_batch(), batch])
    difference = float(
        np.abs(
            classifiers["float32"].outputs(compared) - np.asarray(model.predict_on_batch(compared))
        ).max()
    )
    print(f"LiteRT vs Keras, max abs difference over {len(compared)} inputs: {difference:.2e}")

    lines = ["| step | µs per image |", "|---|---:|"]
    lines += [
        f"| {name} | {us:,.1f}{' ⚠' * (t['other_cpu_percent'] > MAX_DISTURBANCE)} |"
        for name, us, t in rows
    ]
    lines.append(
        f"| LiteRT vs Keras: max abs difference, {len(compared)} inputs | {difference:.1e} |"
    )
    if any(t["other_cpu_percent"] > MAX_DISTURBANCE for _, _, t in rows):
        lines.append(f"\n⚠: other processes took over {MAX_DISTURBANCE}% of a core meanwhile.")
    text = "\n".join(lines)
    print("\n" + text)
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    result = {
        "model": str(model_path),
        "inputs": description,
        "cpu_affinity": sorted(os.sched_getaffinity(0)),
        "malloc_settings": tuned,
        "rows": [{"step": name, "us_per_image": us, **timing} for name, us, timing in rows],
        "litert_vs_keras_max_abs_difference": difference,
        "report_markdown": text,
    }
    (RESULTS_DIR / "components-latest.json").write_text(json.dumps(result, indent=2))
    print(f"\nwrote {RESULTS_DIR / 'components-latest.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
