"""A 12-megapixel phone photo sent to the service as HEIC, AVIF and JPEG.

    python -m bench.phone_photo [--model PATH] [--repeats 10]

The photo is ``model.uploads``' phone photo at 4032×3024 (a 12 MP phone's
size): bench.inputs' drawn 7 in dark ink on unevenly lit paper, sensor noise, stored rotated
with its orientation beside it. It is saved as an iPhone saves HEIC (512×512
tiles in a grid, x265 standing in for the phone's encoder), as AVIF, and as
JPEG. The service runs as deployed (``python -m app``, one worker) on 127.0.0.1
at normal priority, while this process encodes at a lower one. Each file is
posted ``--repeats`` times after one untimed request, one at a time. Reports
each format's file size, its median and slowest answer, the server's CPU
seconds per request (what an idle core would take), the digits read, and the
server's peak resident memory after each format's requests. Then, in this process,
where the time goes: the CPU milliseconds of each preprocessing step, each timed
alone, median of ``--repeats`` (the decoder's threads included).
Writes bench/results/phone-photo-latest.json.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import statistics
import sys
import time
from pathlib import Path

import httpx
import numpy as np
from PIL import Image

from app import preprocessing
from app.config import DEFAULT_MODEL_PATH
from bench.inputs import drawn_digit
from bench.servers import RESULTS_DIR, Server
from bench.system import CpuWatch, rss_mb
from model import uploads

SCALE = 3.9375  # 1024×768 -> 4032×3024
FORMATS = {
    "heic": ("HEIF", "image/heic", {"quality": uploads.HEIC_QUALITY, "tile_size": 512}),
    "avif": ("AVIF", "image/avif", {"quality": uploads.AVIF_QUALITY, "speed": 8}),
    "jpeg": ("JPEG", "image/jpeg", {"quality": 90}),
}


def render(heic_quality: int, seed: int = 0) -> tuple[dict[str, bytes], int]:
    image, exif, _ = uploads._photo(drawn_digit(), np.random.default_rng(seed), scale=SCALE)
    files = {}
    for name, (format, _, options) in FORMATS.items():
        buffer = io.BytesIO()
        if format == "HEIF":
            options = {**options, "quality": heic_quality, "enc_params": {"preset": "ultrafast"}}
        image.save(buffer, format=format, exif=exif, **options)
        files[name] = buffer.getvalue()
    return files, 7  # drawn_digit's


def _cpu_ms(step, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        started = time.process_time()
        step()
        times.append(time.process_time() - started)
    return round(1000 * statistics.median(times), 1)


def stages(data: bytes, repeats: int) -> dict[str, float]:
    """CPU ms of each preprocessing step on one file, each timed alone."""

    def loaded() -> Image.Image:
        image = preprocessing.open_image(data)
        image.load()
        return image

    decoded = preprocessing.decode(preprocessing.open_image(data))
    grey = preprocessing.grey_levels(decoded)
    return {
        "open_and_check_header": _cpu_ms(lambda: preprocessing.open_image(data), repeats),
        # the codec alone at full size (the service decodes a JPEG at 1/8 scale instead)
        "codec_full_size": _cpu_ms(loaded, repeats),
        # the codec, reduced to WORKING_SIZE and turned upright, as the service does
        "decode": _cpu_ms(lambda: preprocessing.decode(preprocessing.open_image(data)), repeats),
        "grey_levels": _cpu_ms(lambda: preprocessing.grey_levels(decoded), repeats),
        "ink_and_fit": _cpu_ms(
            lambda: preprocessing.fit_to_mnist(preprocessing.ink_map(grey)), repeats
        ),
        "preprocessing_all_steps": _cpu_ms(lambda: preprocessing.preprocess(data), repeats),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=DEFAULT_MODEL_PATH)
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument(
        "--heic-quality",
        type=int,
        default=uploads.HEIC_QUALITY,
        help="the HEIC encoder's quality (higher: larger files, slower to decode)",
    )
    args = parser.parse_args(argv)
    server = Server("service", [sys.executable, "-m", "app"], {"MODEL_PATH": str(args.model)})
    server.start()
    try:
        os.nice(10)  # encoding the photos yields to the server (and to everyone else)
        files, label = render(args.heic_quality)
        size = Image.open(io.BytesIO(files["heic"])).size
        report: dict = {"photo": f"{size[0]}x{size[1]}", "label": label, "formats": {}}
        report["heic_quality"] = args.heic_quality
        report["server_rss_at_start_mb"] = rss_mb(server.workers()[0])
        with httpx.Client(base_url=server.url, timeout=30) as http:
            for name, (_, content_type, _) in FORMATS.items():
                upload = {"file": (f"photo.{name}", files[name], content_type)}
                http.post("/predict", files=upload).raise_for_status()  # untimed
                seconds, digits = [], set()
                with CpuWatch(server.workers()) as watch:
                    for _ in range(args.repeats):
                        started = time.perf_counter()
                        response = http.post("/predict", files=upload)
                        seconds.append(time.perf_counter() - started)
                        response.raise_for_status()
                        digits.add(response.json()["digit"])
                report["formats"][name] = {
                    "bytes": len(files[name]),
                    "median_s": round(statistics.median(seconds), 3),
                    "max_s": round(max(seconds), 3),
                    "digits": sorted(digits),
                    "server_cpu_s_per_request": round(watch.server_cpu_s / args.repeats, 3),
                    "server_rss_mb": rss_mb(server.workers()[0]),
                    "other_processes_cpu_percent": watch.other_cpu_percent,
                }
    finally:
        server.stop()
    report["cpu_ms_by_step"] = {name: stages(files[name], args.repeats) for name in FORMATS}
    print(json.dumps(report, indent=2))
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    (RESULTS_DIR / "phone-photo-latest.json").write_text(json.dumps(report, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
