"""The load benchmark of issue 4 and the soak of issue 7: ``make bench``.

    python -m bench.run            # everything, ~13 minutes
    python -m bench.run --quick    # a short smoke run of the same
    python -m bench.run --parts soak --soak-duration 600

Four servers, one uvicorn worker each, the same uvicorn options (asyncio loop,
httptools, uvicorn's access log off), all up on 127.0.0.1 and driven one at a
time, cell by cell, so all four see the same machine:

- ``no-op``: ``bench/noop_app.py``, FastAPI reading the multipart upload and
  nothing else: the ceiling of FastAPI + multipart on this machine;
- ``bare``: ``bench/bare_app.py``, the service's preprocessing and network behind
  a bare ASGI callable, no framework: the floor of the work itself;
- ``naive``: ``bench/naive_app.py``, ``model.predict`` per request, the way
  tutorials serve a Keras model;
- ``service``: this project, as deployed: ``python -m app`` (its own JSON
  request log and metrics included; ``--service-env NAME=VALUE`` to try settings).

wrk (Debian's) drives each with a Lua script that sends a multipart upload, at
1, 8 and 64 connections, for a 28×28 PNG and a ~300 px JPEG photo generated at
run time (bench/inputs.py); the service alone also reads a 6-digit number in a
600×150 PNG through ``POST /read``, at 1 and 64 connections. By default the
server runs on CPU 0 and wrk (one thread) on CPU 1, so the load generator never
takes the server's core. Each cell records how much CPU *other* processes used
meanwhile and is re-run when that passes ``--max-disturbance``.

A virtual machine's speed drifts by tens of per cent from minute to minute,
which no process list shows. So each cell is measured in ``--rounds`` short
rounds (3 × 4 s), the servers taking turns within each round; a cell
reports the median of its rounds' req/s, p50 and p99, and a ratio between
servers is the median of the rounds' ratios, each from runs seconds apart.

Also measured: cold start (process spawn -> first 200 on /health/ready,
conversion cache warm, median of 3),
RSS per worker after the load (/proc/PID/status VmRSS), and a soak:
``python -m app`` with WORKERS=2 under 64 connections for 60 s with a mix of
valid and invalid uploads, every answer checked against the documented status
and body, worker RSS sampled, worker restarts counted.

Prints markdown tables and writes bench/results/bench-<time>.json (and
latest.json). Installs nothing; needs wrk on PATH (``apt-get install wrk``).
Standard library, httpx and the project's own dependencies (Pillow, numpy for
the inputs) only.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import sys
import tempfile
from datetime import UTC, datetime
from pathlib import Path

from bench.inputs import write_inputs
from bench.load import run_load
from bench.report import TARGETS, report, targets
from bench.servers import RESULTS_DIR, SERVERS, run_cold
from bench.soak import run_soak
from bench.system import idle_check, machine

IMAGES = ("png", "jpeg", "number")
PARTS = ("load", "cold", "soak")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="short smoke run (1-5 s per part)")
    parser.add_argument("--parts", default=",".join(PARTS), help="load,cold,soak")
    parser.add_argument("--servers", default=",".join(SERVERS), help=",".join(SERVERS))
    parser.add_argument("--images", default=",".join(IMAGES), help="png,jpeg,number")
    parser.add_argument("--connections", default="1,8,64")
    parser.add_argument("--duration", type=float, default=4.0, help="seconds per round")
    parser.add_argument(
        "--rounds", type=int, default=3, help="rounds per cell, servers alternating"
    )
    parser.add_argument("--warmup", type=float, default=3.0, help="seconds, not measured")
    parser.add_argument("--cold-repeats", type=int, default=3)
    parser.add_argument("--soak-duration", type=float, default=60.0)
    parser.add_argument("--soak-connections", type=int, default=64)
    parser.add_argument("--soak-workers", type=int, default=2)
    parser.add_argument("--soak-sample-every", type=float, default=2.0)
    parser.add_argument("--soak-max-growth-mb", type=float, default=10.0)
    parser.add_argument("--model", type=Path, default=None, help="default: $MODEL_PATH, shipped")
    parser.add_argument(
        "--server-python",
        default=sys.executable,
        help="the servers' interpreter, e.g. the runtime venv's (no naive server there)",
    )
    two_cores = (os.cpu_count() or 1) >= 2
    parser.add_argument(
        "--server-cpus", default="0" if two_cores else "", help="taskset list, '' for none"
    )
    parser.add_argument(
        "--wrk-cpus", default="1" if two_cores else "", help="taskset list, '' for none"
    )
    parser.add_argument(
        "--max-disturbance",
        type=float,
        default=10.0,
        help="%% of a core other processes may take during a cell before it is re-run",
    )
    parser.add_argument("--retries", type=int, default=2)
    parser.add_argument(
        "--quiet-timeout",
        type=float,
        default=300.0,
        help="seconds to wait, before each cell, for other processes to quiet down",
    )
    parser.add_argument(
        "--service-env",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="a setting for the service (repeatable), e.g. BATCH_MAX_WAIT_MS=1",
    )
    parser.add_argument("--json", type=Path, default=None, help="also write results here")
    parser.add_argument("--results-dir", type=Path, default=RESULTS_DIR, help="JSON and logs")
    args = parser.parse_args(argv)
    if args.quick:
        args.duration, args.warmup, args.cold_repeats, args.rounds = 1.0, 1.0, 1, 1
        args.soak_duration, args.soak_sample_every, args.retries = 5.0, 1.0, 0
        args.quiet_timeout = 2.0
    args.parts = [p for p in args.parts.split(",") if p]
    args.servers = [s for s in args.servers.split(",") if s]
    args.images = [i for i in args.images.split(",") if i]
    args.connections = [int(c) for c in args.connections.split(",") if c]
    unknown = (
        set(args.parts) - set(PARTS)
        | set(args.servers) - set(SERVERS)
        | set(args.images) - set(IMAGES)
    )
    if unknown:
        parser.error(f"unknown: {sorted(unknown)}")
    from app.config import DEFAULT_MODEL_PATH

    args.model = Path(args.model or os.environ.get("MODEL_PATH") or DEFAULT_MODEL_PATH).resolve()
    args.server_cpus = args.server_cpus or None
    try:
        args.service_env = dict(item.split("=", 1) for item in args.service_env)
    except ValueError:
        parser.error("--service-env takes NAME=VALUE")
    args.wrk_cpus = args.wrk_cpus or None
    return args


def _exit_on_signal(signum: int, frame) -> None:
    raise SystemExit(128 + signum)  # unwinds through the finally blocks that stop servers


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, _exit_on_signal)
    signal.signal(signal.SIGINT, _exit_on_signal)  # also when started in the background
    if shutil.which("wrk") is None:
        print("wrk not found; install it: sudo apt-get install -y wrk", file=sys.stderr)
        return 2
    if (args.server_cpus or args.wrk_cpus) and shutil.which("taskset") is None:
        print("taskset not found; pass --server-cpus '' --wrk-cpus ''", file=sys.stderr)
        return 2
    needs_model = {"bare", "naive", "service"} & set(args.servers) or "soak" in args.parts
    if needs_model and not args.model.is_file():
        print(f"model {args.model} not found (set MODEL_PATH or --model)", file=sys.stderr)
        return 2
    started = datetime.now(UTC)
    stamp = started.strftime("%Y%m%dT%H%M%SZ")
    args.results_dir.mkdir(parents=True, exist_ok=True)
    log_dir = args.results_dir / f"logs-{stamp}"
    from app.inference import file_sha256

    results: dict = {
        "started": started.isoformat(timespec="seconds"),
        "arguments": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
        "machine": machine(),
        "model": {
            "path": str(args.model),
            "sha256": file_sha256(args.model) if args.model.is_file() else "-",
        },
        "targets": TARGETS,
    }
    print(f"load average {results['machine']['load_at_start']}", flush=True)
    results["idle_other_cpu_percent"] = idle_check(1.0 if args.quick else 3.0)
    if results["idle_other_cpu_percent"] > args.max_disturbance:
        print(
            f"warning: other processes use {results['idle_other_cpu_percent']}% of a core "
            "before we start; the figures will be disturbed",
            flush=True,
        )
    with tempfile.TemporaryDirectory(prefix="digits-bench-") as folder:
        inputs, results["inputs"] = write_inputs(Path(folder))
        if "cold" in args.parts:
            print("\ncold start", flush=True)
            results["cold"] = run_cold(args, log_dir)
        if "load" in args.parts:
            results["load"] = run_load(args, inputs, log_dir)
        if "soak" in args.parts:
            results["soak"] = run_soak(args, inputs, log_dir)
    results["finished"] = datetime.now(UTC).isoformat(timespec="seconds")
    results["targets_met"] = [
        {"target": t, "required": r, "measured": v, "met": ok} for t, r, v, ok in targets(results)
    ]
    text = report(results, args)
    results["report_markdown"] = text
    print("\n" + text)
    output = json.dumps(results, indent=2)
    (args.results_dir / f"bench-{stamp}.json").write_text(output)
    (args.results_dir / "latest.json").write_text(output)
    (args.results_dir / "latest.md").write_text(text + "\n")
    if args.json:
        args.json.write_text(output)
    print(f"\nwrote {args.results_dir / f'bench-{stamp}.json'} and latest.md")
    return 0


if __name__ == "__main__":
    sys.exit(main())
