"""Small digits and phone photos at once on one worker: what each kind gets.

    python -m bench.mixed [--png 48] [--jpeg 16] [--duration 8] [--rounds 3]
                          [--variant NAME=VALUE ...]

One service worker (``python -m app``, on CPU 0) takes the 28×28 PNG and the 300 px
JPEG of bench/inputs.py from two wrk processes at once (on CPU 1), each on its own
connections. Per kind: req/s, p50 and p99 (the server's log goes to a temporary
folder). With ``--variant`` (a service setting, repeatable), each round runs the
service as shipped and then with the variant, so the two are compared in the same
minutes (e.g. ``INLINE_MAX_PIXELS=65536``). The full benchmark (bench/run.py) loads
one kind at a time; this shows how they share a worker.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import threading
from pathlib import Path

from app.config import DEFAULT_MODEL_PATH
from bench.inputs import write_inputs
from bench.load import run_wrk
from bench.servers import make_server


def one_round(setting: dict[str, str], inputs, args, log_dir: Path) -> dict[str, dict[str, float]]:
    options = argparse.Namespace(**vars(args), service_env=setting)
    server = make_server("service", options, log_dir)
    server.start()
    results: dict[str, dict] = {}
    try:
        warm = inputs["png"]
        run_wrk(server.url, "multipart.lua", [str(warm.path), warm.content_type], 8, 2, "1")

        def load(kind: str, connections: int) -> None:
            upload = inputs[kind]
            script_args = [str(upload.path), upload.content_type]
            results[kind] = run_wrk(
                server.url, "multipart.lua", script_args, connections, args.duration, "1"
            )

        threads = [
            threading.Thread(target=load, args=("png", args.png)),
            threading.Thread(target=load, args=("jpeg", args.jpeg)),
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    finally:
        server.stop()
    return {
        kind: {
            "rps": result["rps"],
            "p50_ms": result["p50_ms"],
            "p99_ms": result["p99_ms"],
            "errors": result["connection_errors"] + result["errors"]["status"],
        }
        for kind, result in sorted(results.items())
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--png", type=int, default=48, help="connections sending the PNG")
    parser.add_argument("--jpeg", type=int, default=16, help="connections sending the JPEG")
    parser.add_argument("--duration", type=float, default=8.0, help="seconds per round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--variant", action="append", default=[], metavar="NAME=VALUE")
    parser.add_argument("--model", type=Path, default=None, help="default: $MODEL_PATH, shipped")
    args = parser.parse_args(argv)
    args.server_python, args.server_cpus = sys.executable, "0"  # wrk on CPU 1
    args.model = Path(args.model or os.environ.get("MODEL_PATH") or DEFAULT_MODEL_PATH)
    variant = dict(item.split("=", 1) for item in args.variant)
    settings = {
        "as shipped": {},
        **({"variant " + " ".join(args.variant): variant} if variant else {}),
    }
    with tempfile.TemporaryDirectory(prefix="digits-mixed-") as folder:
        inputs, _ = write_inputs(Path(folder))
        for number in range(1, args.rounds + 1):
            for name, setting in settings.items():
                rows = one_round(setting, inputs, args, Path(folder))
                cells = "; ".join(
                    f"{kind} {row['rps']:,.1f} req/s p50 {row['p50_ms']:.1f} ms "
                    f"p99 {row['p99_ms']:.1f} ms errors {row['errors']}"
                    for kind, row in rows.items()
                )
                print(f"round {number}, {name}: {cells}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
