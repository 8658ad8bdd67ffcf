"""The load benchmark of issue 4 and the soak of issue 7: ``make bench``.

    python -m bench.run            # everything, ~13 minutes
    python -m bench.run --quick    # a short smoke run of the same
    python -m bench.run --parts soak --soak-duration 600

Four servers, one uvicorn worker each, the same uvicorn options (uvloop,
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
run time (bench/inputs.py). By default the server runs on CPU 0 and wrk (one
thread) on CPU 1, so the load generator never takes the server's core. Each
cell records how much CPU *other* processes used meanwhile and is re-run when
that passes ``--max-disturbance``.

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
import contextlib
import json
import os
import platform
import re
import resource
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import httpx

from bench.inputs import Input, write_inputs

PROJECT_ROOT = Path(__file__).resolve().parent.parent
BENCH_DIR = PROJECT_ROOT / "bench"
RESULTS_DIR = BENCH_DIR / "results"
SERVERS = ("noop", "bare", "naive", "service")
IMAGES = ("png", "jpeg")
PARTS = ("load", "cold", "soak")
TICKS = os.sysconf("SC_CLK_TCK")
UVICORN_OPTIONS = [
    "--host",
    "127.0.0.1",
    "--workers",
    "1",
    "--loop",
    "uvloop",
    "--http",
    "httptools",
    "--no-access-log",
    "--log-level",
    "warning",
]
# One wrk thread per entry, each on connections / len(SOAK_MIX) connections.
SOAK_MIX = ("png", "png", "png", "jpeg", "jpeg", "empty", "random", "blank")
CONNECTION_ERRORS = ("connect", "read", "write", "timeout")

# Issue 4's targets: one worker, 64 connections, 28×28 PNG, side by side in one run.
TARGETS = {
    "share_of_noop": 0.5,
    "times_naive": 50.0,
    "p99_ms": 30.0,
    "p50_one_connection_ms": 1.0,
    "cold_start_s": 5.0,
    "rss_mb": 700.0,
}


# --------------------------------------------------------------------------- processes


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def pinned(command: list[str], cpus: str | None) -> list[str]:
    return ["taskset", "-c", cpus, *command] if cpus else command


def proc_children(pid: int) -> list[int]:
    children = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        with contextlib.suppress(OSError):
            children += [int(p) for p in (task / "children").read_text().split()]
    return children


def proc_tree(pid: int) -> list[int]:
    tree, pending = [], [pid]
    while pending:
        current = pending.pop()
        tree.append(current)
        pending += proc_children(current)
    return tree


def cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def rss_mb(pid: int) -> dict[str, float] | None:
    """VmRSS and VmHWM (peak) of one process, in MB (10^6 bytes)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    values = dict(re.findall(r"^(VmRSS|VmHWM):\s+(\d+) kB", status, flags=re.MULTILINE))
    return {
        "rss_mb": round(int(values["VmRSS"]) * 1024 / 1e6, 1),
        "peak_mb": round(int(values["VmHWM"]) * 1024 / 1e6, 1),
    }


def cpu_seconds(pids: list[int]) -> float:
    total = 0
    for pid in pids:
        with contextlib.suppress(OSError, IndexError):
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / TICKS


def machine_busy_seconds() -> float:
    """CPU seconds spent busy by the whole machine since boot (all cores)."""
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    user, nice, system, _idle, _iowait, irq, softirq, steal = values[:8]
    return (user + nice + system + irq + softirq + steal) / TICKS


def self_and_children_seconds() -> tuple[float, float]:
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime, children.ru_utime + children.ru_stime


class CpuWatch:
    """How much CPU other processes took (in % of one core) while we measured."""

    def __init__(self, server_pids: list[int]):
        self.server_pids = server_pids

    def __enter__(self) -> CpuWatch:
        self.started = time.monotonic()
        self.machine = machine_busy_seconds()
        self.server = cpu_seconds(self.server_pids)
        self.own, self.children = self_and_children_seconds()
        return self

    def __exit__(self, *exc) -> None:
        wall = time.monotonic() - self.started
        own, children = self_and_children_seconds()
        self.server_cpu_s = cpu_seconds(self.server_pids) - self.server
        self.load_generator_cpu_s = children - self.children  # wrk, once waited for
        ours = self.server_cpu_s + self.load_generator_cpu_s + (own - self.own)
        other = machine_busy_seconds() - self.machine - ours
        self.other_cpu_percent = round(max(0.0, 100.0 * other / wall), 1)
        self.server_cpu_percent = round(100.0 * self.server_cpu_s / wall, 1)


@dataclass
class Server:
    name: str
    command: list[str]
    env: dict[str, str] = field(default_factory=dict)
    cpus: str | None = None
    log_dir: Path = RESULTS_DIR
    port: int = 0
    process: subprocess.Popen | None = None
    log_file: object = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 180.0) -> float:
        """Spawn and wait for /health/ready; seconds from spawn to the first 200."""
        self.port = free_port()
        env = {**os.environ, "PYTHONUNBUFFERED": "1", **self.env}
        env.update({"HOST": "127.0.0.1", "PORT": str(self.port)})
        command = [part.replace("{port}", str(self.port)) for part in self.command]
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self.log_file = (self.log_dir / f"{self.name}.log").open("a")
        started = time.monotonic()
        self.process = subprocess.Popen(
            pinned(command, self.cpus),
            cwd=PROJECT_ROOT,
            env=env,
            stdout=self.log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        with httpx.Client(timeout=2.0) as client:
            while time.monotonic() - started < timeout:
                if self.process.poll() is not None:
                    raise RuntimeError(
                        f"{self.name} exited with {self.process.returncode}; "
                        f"see {self.log_dir / (self.name + '.log')}"
                    )
                with contextlib.suppress(httpx.HTTPError):
                    if client.get(f"{self.url}/health/ready").status_code == 200:
                        return time.monotonic() - started
                time.sleep(0.02)
        self.stop()
        raise RuntimeError(f"{self.name} not ready after {timeout:.0f} s")

    def workers(self) -> list[int]:
        """The processes that serve: the server itself, or its spawned workers."""
        if self.process is None:
            return []
        spawned = [pid for pid in proc_tree(self.process.pid)[1:] if "spawn_main" in cmdline(pid)]
        return spawned or [self.process.pid]

    def stop(self) -> None:
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
        self.process = None
        if self.log_file:
            self.log_file.close()


def wait_idle(server: Server, timeout: float = 120.0) -> float:
    """Wait until the server has worked off what earlier runs left queued.

    wrk stops at its deadline, but requests already accepted are still served:
    the naive server may have seconds of them. Idle: under 5 % of a core for
    two 0.2 s windows in a row. Returns the seconds waited.
    """
    started, quiet = time.monotonic(), 0
    while quiet < 2 and time.monotonic() - started < timeout:
        pids = server.workers()
        before = cpu_seconds(pids)
        time.sleep(0.2)
        quiet = quiet + 1 if cpu_seconds(pids) - before < 0.01 else 0
    return time.monotonic() - started


def wait_quiet(server: Server | None, max_disturbance: float, timeout: float) -> float:
    """Wait (up to ``timeout``) until the server is idle and other processes are quiet.

    On a shared machine, measuring while someone else's tests run gives figures of
    nothing; waiting for a quiet second costs little. Returns the seconds waited.
    """
    started, said = time.monotonic(), False
    if server is not None:
        wait_idle(server)
    while time.monotonic() - started < timeout:
        with CpuWatch(server.workers() if server else []) as watch:
            time.sleep(0.5)
        if watch.other_cpu_percent <= max_disturbance and watch.server_cpu_percent < 5:
            break
        if not said:
            print(
                f"    waiting for a quiet machine (others take {watch.other_cpu_percent}% "
                "of a core)",
                flush=True,
            )
            said = True
    return time.monotonic() - started


def make_server(name: str, args, log_dir: Path, workers: int = 1) -> Server:
    """The no-op, bare and naive apps under the uvicorn CLI; the service as deployed.

    The service runs as ``python -m app``, which calls uvicorn with the same loop
    (uvloop), parser (httptools) and no uvicorn access log; it logs its own JSON
    line per request at LOG_LEVEL=info, as in production. ``--service-env``
    adds settings (LOG_LEVEL=warning, BATCH_MAX_WAIT_MS=1, ...).
    """
    env = {"MODEL_PATH": str(args.model), "TF_CPP_MIN_LOG_LEVEL": "2"}
    if name == "service":
        env.update(WORKERS=str(workers), **args.service_env)
        return Server(name, [sys.executable, "-m", "app"], env, args.server_cpus, log_dir)
    target = {
        "noop": "bench.noop_app:app",
        "bare": "bench.bare_app:app",
        "naive": "bench.naive_app:app",
    }[name]
    command = [sys.executable, "-m", "uvicorn", target, *UVICORN_OPTIONS, "--port", "{port}"]
    return Server(name, command, env, args.server_cpus, log_dir)


# --------------------------------------------------------------------------- wrk


def run_wrk(
    url: str,
    script: str,
    script_args: list[str],
    connections: int,
    duration: float,
    cpus: str | None,
    threads: int = 1,
) -> dict:
    command = [
        "wrk",
        f"-t{threads}",
        f"-c{connections}",
        f"-d{max(1, round(duration))}s",
        "--timeout",
        "30s",
        "-s",
        str(BENCH_DIR / script),
        f"{url}/predict",
        "--",
        *script_args,
    ]
    completed = subprocess.run(
        pinned(command, cpus),
        capture_output=True,
        text=True,
        timeout=duration + 60,
        check=False,
    )
    for line in completed.stdout.splitlines():
        if line.startswith("BENCH_JSON "):
            result = json.loads(line.removeprefix("BENCH_JSON "))
            seconds = result["duration_us"] / 1e6
            result["rps"] = round(result["requests"] / seconds, 1) if seconds else 0.0
            result["p50_ms"] = result["latency_us"]["p50"] / 1000
            result["p99_ms"] = result["latency_us"]["p99"] / 1000
            result["connection_errors"] = sum(result["errors"][k] for k in CONNECTION_ERRORS)
            return result
    raise RuntimeError(
        f"wrk gave no result (exit {completed.returncode}): "
        f"{completed.stderr.strip() or completed.stdout.strip()}"
    )


def measure_cell(
    server: Server,
    upload: Input,
    connections: int,
    duration: float,
    wrk_cpus: str | None,
    max_disturbance: float,
    retries: int,
    quiet_timeout: float,
) -> dict:
    """One load run; re-run (keeping the quietest) while other processes took CPU."""
    attempts = []
    for attempt in range(retries + 1):
        waited = wait_quiet(server, max_disturbance, quiet_timeout)
        load_before = os.getloadavg()[0]
        with CpuWatch(server.workers()) as watch:
            result = run_wrk(
                server.url,
                "multipart.lua",
                [str(upload.path), upload.content_type],
                connections,
                duration,
                wrk_cpus,
            )
        result.update(
            other_cpu_percent=watch.other_cpu_percent,
            server_cpu_percent=watch.server_cpu_percent,
            load_before=round(load_before, 2),
            waited_for_quiet_s=round(waited, 1),
        )
        attempts.append(result)
        if watch.other_cpu_percent <= max_disturbance or attempt == retries:
            break
        print(
            f"    disturbed: other processes took {watch.other_cpu_percent}% of a core; "
            "running again",
            flush=True,
        )
    best = min(attempts, key=lambda r: r["other_cpu_percent"])
    best["attempts"] = len(attempts)
    best["disturbed"] = best["other_cpu_percent"] > max_disturbance
    return best


def combine_rounds(rounds: list[dict]) -> dict:
    """One cell from its rounds: req/s, p50 and p99 each the median over the rounds
    (one stalled round does not make the cell's p99); errors and attempts summed
    over all rounds; every round's req/s kept for the ratios."""
    cell = dict(sorted(rounds, key=lambda r: r["rps"])[len(rounds) // 2])
    for figure in ("rps", "p50_ms", "p99_ms"):
        cell[figure] = statistics.median(r[figure] for r in rounds)
    cell["rounds_rps"] = [r["rps"] for r in rounds]
    cell["connection_errors"] = sum(r["connection_errors"] for r in rounds)
    cell["errors"] = {key: sum(r["errors"][key] for r in rounds) for key in cell["errors"]}
    cell["attempts"] = sum(r["attempts"] for r in rounds)
    cell["other_cpu_percent"] = max(r["other_cpu_percent"] for r in rounds)
    cell["disturbed"] = any(r["disturbed"] for r in rounds)
    return cell


def ratio(cell: dict, base: dict) -> float | None:
    """``cell``'s req/s over ``base``'s: the median over rounds run side by side."""
    rounds = cell.get("rounds_rps", [cell["rps"]])
    base_rounds = base.get("rounds_rps", [base["rps"]])
    ratios = [a / b for a, b in zip(rounds, base_rounds, strict=True) if b]
    return statistics.median(ratios) if ratios else None


def check_answer(server: str, response: httpx.Response, expected: int) -> dict:
    body = response.json()
    if response.status_code != expected:
        raise RuntimeError(f"{server}: expected {expected}, got {response.status_code}: {body}")
    if expected == 200 and server != "noop" and "digit" not in body:
        raise RuntimeError(f"{server}: no digit in {body}")
    if expected != 200 and set(body) != {"detail"}:
        raise RuntimeError(f"{server}: expected a JSON detail, got {body}")
    return body


def post(url: str, upload: Input) -> httpx.Response:
    files = {"file": (upload.path.name, upload.path.read_bytes(), upload.content_type)}
    return httpx.post(f"{url}/predict", files=files, timeout=30.0)


# --------------------------------------------------------------------------- parts


def run_load(args, inputs: dict[str, Input], log_dir: Path) -> dict:
    """Every cell on every server in turn, all servers up at once (each idle while
    another is measured), so slow drifts of the machine hit them all alike.
    A server's backlog (the naive one's lasts seconds) is worked off before the
    next cell starts."""
    cells, rss, answers = [], {}, {}
    servers = {name: make_server(name, args, log_dir) for name in args.servers}
    try:
        for name, server in servers.items():
            print(f"{name}: starting", flush=True)
            server.start()
        for image in args.images:
            upload = inputs[image]
            wrk_args = [str(upload.path), upload.content_type]
            print(f"\n{image}: warming up", flush=True)
            for name, server in servers.items():
                body = check_answer(name, post(server.url, upload), 200)
                answers[f"{name}/{image}"] = body.get("digit", body)
                wait_idle(server)
                run_wrk(
                    server.url,
                    "multipart.lua",
                    wrk_args,
                    max(args.connections),
                    args.warmup,
                    args.wrk_cpus,
                )
                wait_idle(server)
            for connections in args.connections:
                rounds: dict[str, list[dict]] = {name: [] for name in servers}
                for number in range(1, args.rounds + 1):
                    for name, server in servers.items():
                        result = measure_cell(
                            server,
                            upload,
                            connections,
                            args.duration,
                            args.wrk_cpus,
                            args.max_disturbance,
                            args.retries,
                            args.quiet_timeout,
                        )
                        rounds[name].append(result)
                        wait_idle(server)  # its backlog would disturb the next server's run
                        print(
                            f"  {name:>7} {image:>4} c={connections:<3} round {number}  "
                            f"{result['rps']:>9.1f} req/s  "
                            f"p50 {result['p50_ms']:8.2f} ms  p99 {result['p99_ms']:8.2f} ms  "
                            f"errors {result['connection_errors'] + result['errors']['status']}  "
                            f"server CPU {result['server_cpu_percent']}%  "
                            f"other CPU {result['other_cpu_percent']}%",
                            flush=True,
                        )
                for name, measured in rounds.items():
                    cell = combine_rounds(measured)
                    cell.update(server=name, image=image, connections=connections)
                    cells.append(cell)
        for name, server in servers.items():
            rss[name] = rss_mb(server.process.pid)
        print(f"RSS after load: {rss}", flush=True)
    finally:
        for server in servers.values():
            server.stop()
    return {"cells": cells, "rss_after_load": rss, "answers": answers}


def run_cold(args, log_dir: Path) -> dict:
    from app.inference import converted_path, file_sha256, read_card, shipped_litert

    results = {}
    sha256 = file_sha256(args.model)
    shipped = shipped_litert(args.model, sha256, read_card(args.model, sha256))
    if shipped is None and not converted_path(args.model, sha256).is_file():
        server = make_server("service", args, log_dir)
        seconds = server.start(timeout=600)
        server.stop()
        results["service first start (converts the model)"] = {"seconds": [round(seconds, 3)]}
        print(f"  first start, converting the model: {seconds:.2f} s", flush=True)
    for name in args.servers:
        server = make_server(name, args, log_dir)
        times = []
        for _ in range(args.cold_repeats):
            wait_quiet(None, args.max_disturbance, args.quiet_timeout)
            times.append(round(server.start(), 3))
            time.sleep(0.3)
            server.stop()
        results[name] = {
            "command": " ".join(server.command),
            "seconds": times,
            "median_s": statistics.median(times),
        }
        print(f"  {name}: cold start {times} s", flush=True)
    return results


def soak_check(result: dict, inputs: dict[str, Input]) -> dict:
    """Every answer as documented: each kind only ever got its status and body shape.

    Each wrk thread sends one kind, so every answer is known to belong to its kind.
    """
    problems = []
    for kind, statuses in sorted(result["answers"].items()):
        expected = str(inputs[kind].expected_status)
        wrong = {status: n for status, n in statuses.items() if status != expected}
        if wrong:
            problems.append(f"{kind}: expected {expected}, got {wrong}")
        if result["undocumented"].get(kind):
            problems.append(f"{kind}: {result['undocumented'][kind]} undocumented answers")
    if result["connection_errors"]:
        problems.append(f"connection errors {result['errors']}")
    return {"problems": problems, "ok": not problems}


def run_soak(args, inputs: dict[str, Input], log_dir: Path) -> dict:
    server = make_server("service", args, log_dir, workers=args.soak_workers)
    server.cpus = None
    print(f"\nsoak: python -m app, WORKERS={args.soak_workers}", flush=True)
    server.start()
    samples: list[dict] = []
    seen_workers: list[int] = []
    stop = threading.Event()

    def sample() -> None:
        started = time.monotonic()
        while True:
            pids = server.workers()
            for pid in pids:
                if pid not in seen_workers:
                    seen_workers.append(pid)
            row = {"t": round(time.monotonic() - started, 1), "load": os.getloadavg()[0]}
            row["rss_mb"] = {str(pid): (rss_mb(pid) or {}).get("rss_mb") for pid in pids}
            samples.append(row)
            if stop.wait(args.soak_sample_every):
                return

    try:
        first_workers = server.workers()
        seen_workers.extend(first_workers)
        for kind in dict.fromkeys(SOAK_MIX):  # each kind once, exactly, before the load
            check_answer("service", post(server.url, inputs[kind]), inputs[kind].expected_status)
        specs = [
            f"{k}:{inputs[k].expected_status}:{inputs[k].content_type}:{inputs[k].path}"
            for k in SOAK_MIX
        ]
        threads = len(SOAK_MIX)
        run_wrk(server.url, "soak.lua", specs, args.soak_connections, args.warmup, None, threads)
        wait_quiet(server, args.max_disturbance, args.quiet_timeout)
        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        with CpuWatch(server.workers()) as watch:
            result = run_wrk(
                server.url,
                "soak.lua",
                specs,
                args.soak_connections,
                args.soak_duration,
                None,
                threads,
            )
        result["other_cpu_percent"] = watch.other_cpu_percent
        stop.set()
        sampler.join()
        last_workers = server.workers()
    finally:
        stop.set()
        server.stop()
    check = soak_check(result, inputs)
    restarts = len(seen_workers) - len(first_workers)
    per_worker = {}
    for pid in seen_workers:
        series = [(s["t"], s["rss_mb"][str(pid)]) for s in samples if s["rss_mb"].get(str(pid))]
        if series:
            # Allocators grow to their working set first: growth counts from a quarter in.
            settle = next(v for t, v in series if t >= series[-1][0] / 4)
            per_worker[str(pid)] = {
                "first_mb": series[0][1],
                "settled_mb": settle,
                "last_mb": series[-1][1],
                "max_mb": max(v for _, v in series),
                "growth_mb": round(series[-1][1] - settle, 1),
            }
    growth = max((w["growth_mb"] for w in per_worker.values()), default=0.0)
    # A few seconds say nothing about a leak: short soaks are not judged on it.
    flat = growth <= args.soak_max_growth_mb if args.soak_duration >= 30 else None
    if restarts:
        check["problems"].append(f"{restarts} worker restart(s)")
    if flat is False:
        check["problems"].append(f"RSS grew by {growth} MB")
    check["ok"] = not check["problems"]
    print(
        f"  {result['rps']} req/s, p99 {result['p99_ms']} ms, answers {result['answers']}, "
        f"restarts {restarts}, RSS {per_worker}, problems {check['problems'] or 'none'}",
        flush=True,
    )
    return {
        "command": f"WORKERS={args.soak_workers} python -m app",
        "mix": list(SOAK_MIX),
        "connections": args.soak_connections,
        "duration_s": args.soak_duration,
        "wrk": result,
        "check": check,
        "workers_before": first_workers,
        "workers_after": last_workers,
        "restarts": restarts,
        "rss": per_worker,
        "rss_flat": flat,
        "samples": samples,
    }


# --------------------------------------------------------------------------- report


def machine() -> dict:
    cpu = "unknown"
    with contextlib.suppress(OSError):
        match = re.search(r"^model name\s*:\s*(.+)$", Path("/proc/cpuinfo").read_text(), re.M)
        cpu = match.group(1).strip() if match else cpu
    memory = re.search(r"MemTotal:\s+(\d+)", Path("/proc/meminfo").read_text())
    versions = {}
    from importlib import metadata

    for package in ("fastapi", "uvicorn", "python-multipart", "keras", "ai-edge-litert"):
        with contextlib.suppress(metadata.PackageNotFoundError):
            versions[package] = metadata.version(package)
    for package in ("tensorflow-cpu", "tensorflow"):
        with contextlib.suppress(metadata.PackageNotFoundError):
            versions[package] = metadata.version(package)
            break
    wrk_version = subprocess.run(["wrk", "-v"], capture_output=True, text=True).stdout
    git = subprocess.run(
        ["git", "describe", "--always", "--dirty"],
        capture_output=True,
        text=True,
        cwd=PROJECT_ROOT,
    ).stdout.strip()
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "memory_gb": round(int(memory.group(1)) / 1024 / 1024, 1) if memory else None,
        "kernel": platform.release(),
        "python": platform.python_version(),
        "versions": versions,
        "wrk": " ".join(wrk_version.split()[:2]) if wrk_version else "?",
        "git": git,
        "load_at_start": [round(v, 2) for v in os.getloadavg()],
    }


def idle_check(seconds: float) -> float:
    """% of one core that other processes use while the benchmark is idle."""
    with CpuWatch([]) as watch:
        time.sleep(seconds)
    return watch.other_cpu_percent


def fmt(value: float, digits: int = 1) -> str:
    return f"{value:,.{digits}f}"


def ms(value: float) -> str:
    return f"{value:.2f}" if value < 10 else f"{value:.1f}" if value < 1000 else f"{value:,.0f}"


def image_label(image: str) -> str:
    return "28×28 PNG" if image == "png" else "300 px JPEG"


def cell_keys(cells: list[dict]) -> list[tuple[str, int]]:
    """(image, connections) of the cells, PNG first, then by connections."""
    keys = sorted({(c["image"], c["connections"]) for c in cells}, key=lambda k: (k[0], k[1]))
    return sorted(keys, key=lambda key: key[0] != "png")


def load_table(cells: list[dict], servers: list[str]) -> list[str]:
    """No-op, naive and service side by side (the bare server has its own table)."""
    servers = [name for name in servers if name != "bare"]
    by_key = {(c["server"], c["image"], c["connections"]): c for c in cells}
    labels = {"noop": "no-op", "naive": "naive", "service": "service"}
    header = "| image | conns |"
    rule = "|---|---:|"
    for name in servers:
        header += f" {labels[name]} req/s | p50 ms | p99 ms |"
        rule += "---:|---:|---:|"
    if "service" in servers and "noop" in servers:
        header += " service / no-op |"
        rule += "---:|"
    if "service" in servers and "naive" in servers:
        header += " service / naive |"
        rule += "---:|"
    header += " errors | other CPU % |"
    rule += "---:|---:|"
    lines = [header, rule]
    for image, connections in cell_keys(cells):
        row = [c for name in servers if (c := by_key.get((name, image, connections)))]
        line = f"| {image_label(image)} | {connections} |"
        for name in servers:
            c = by_key.get((name, image, connections))
            line += (
                f" {fmt(c['rps'])} | {ms(c['p50_ms'])} | {ms(c['p99_ms'])} |"
                if c
                else " – | – | – |"
            )
        service = by_key.get(("service", image, connections))
        for other in ("noop", "naive"):
            if "service" in servers and other in servers:
                base = by_key.get((other, image, connections))
                times = ratio(service, base) if service and base else None
                if times is None:
                    line += " – |"
                else:
                    line += f" {times:.0%} |" if other == "noop" else f" {times:,.0f}× |"
        errors = "/".join(str(c["connection_errors"] + c["errors"]["status"]) for c in row)
        other_cpu = max(c["other_cpu_percent"] for c in row)
        flag = " ⚠" if any(c["disturbed"] for c in row) else ""
        line += f" {errors} | {other_cpu}{flag} |"
        lines.append(line)
    return lines


def floor_table(cells: list[dict]) -> list[str]:
    """The bare server against the no-op above it and the service below it."""
    by_key = {(c["server"], c["image"], c["connections"]): c for c in cells}
    lines = [
        "| image | conns | bare req/s | p50 ms | p99 ms | bare / no-op | service / bare | errors |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for image, connections in cell_keys(cells):
        bare = by_key.get(("bare", image, connections))
        if bare is None:
            continue
        noop = by_key.get(("noop", image, connections))
        service = by_key.get(("service", image, connections))
        shares = [ratio(bare, noop) if noop else None, ratio(service, bare) if service else None]
        lines.append(
            f"| {image_label(image)} | {connections} | {fmt(bare['rps'])} | "
            f"{ms(bare['p50_ms'])} | {ms(bare['p99_ms'])} | "
            + " | ".join("–" if share is None else f"{share:.0%}" for share in shares)
            + f" | {bare['connection_errors'] + bare['errors']['status']} |"
        )
    return lines


def targets(results: dict) -> list[tuple[str, str, str, bool | None]]:
    """(target, required, measured, met) for issue 4's and issue 7's targets."""
    rows: list[tuple[str, str, str, bool | None]] = []
    load = results.get("load", {})
    by_key = {(c["server"], c["image"], c["connections"]): c for c in load.get("cells", [])}
    top = max((c for (_, _, c) in by_key), default=0)
    service = by_key.get(("service", "png", top))
    if service:
        noop = by_key.get(("noop", "png", top))
        naive = by_key.get(("naive", "png", top))
        share = ratio(service, noop) if noop else None
        if share is not None:
            rows.append(
                (
                    f"req/s vs no-op ({top} conns, PNG)",
                    f"≥ {TARGETS['share_of_noop']:.0%}",
                    f"{share:.0%}",
                    share >= TARGETS["share_of_noop"],
                )
            )
        times = ratio(service, naive) if naive else None
        if times is not None:
            rows.append(
                (
                    f"req/s vs naive ({top} conns, PNG)",
                    f"≥ {TARGETS['times_naive']:.0f}×",
                    f"{times:,.1f}×",
                    times >= TARGETS["times_naive"],
                )
            )
        rows.append(
            (
                f"p99 ({top} conns, PNG)",
                f"≤ {TARGETS['p99_ms']:.0f} ms",
                f"{ms(service['p99_ms'])} ms",
                service["p99_ms"] <= TARGETS["p99_ms"],
            )
        )
        errors = sum(
            c["connection_errors"] + c["errors"]["status"]
            for (name, _, _), c in by_key.items()
            if name == "service"
        )
        rows.append(("errors (all service cells)", "0", str(errors), errors == 0))
        single = by_key.get(("service", "png", 1))
        if single:
            rows.append(
                (
                    "p50 at 1 connection (PNG)",
                    f"≤ {TARGETS['p50_one_connection_ms']:.0f} ms",
                    f"{ms(single['p50_ms'])} ms",
                    single["p50_ms"] <= TARGETS["p50_one_connection_ms"],
                )
            )
    cold = results.get("cold", {}).get("service")
    if cold:
        rows.append(
            (
                "cold start to ready (`python -m app`, median)",
                f"≤ {TARGETS['cold_start_s']:.0f} s",
                f"{cold['median_s']:.2f} s",
                cold["median_s"] <= TARGETS["cold_start_s"],
            )
        )
    rss = []
    if (load.get("rss_after_load") or {}).get("service"):
        rss.append(load["rss_after_load"]["service"]["rss_mb"])
    soak = results.get("soak")
    if soak:
        rss += [w["max_mb"] for w in soak["rss"].values()]
    if rss:
        rows.append(
            (
                "RSS per worker (after load; soak max)",
                f"≤ {TARGETS['rss_mb']:.0f} MB",
                f"{max(rss):.0f} MB",
                max(rss) <= TARGETS["rss_mb"],
            )
        )
    if soak:
        rows.append(
            (
                f"soak {soak['duration_s']:.0f} s: every answer as documented, no restart, "
                "RSS flat",
                "yes",
                ("yes" if soak["rss_flat"] is not None else "yes (RSS not judged: < 30 s)")
                if soak["check"]["ok"]
                else "; ".join(soak["check"]["problems"]),
                soak["check"]["ok"],
            )
        )
    return rows


def report(results: dict, args) -> str:
    m = results["machine"]
    lines = [
        f"# digits benchmark, {results['started']}",
        "",
        f"Machine: {m['cpu']}, {m['cores']} cores, {m['memory_gb']} GB; Python {m['python']}, "
        f"{m['wrk']}; git {m['git']}; load at start {m['load_at_start']}; other processes "
        f"idle-time CPU {results['idle_other_cpu_percent']}% of a core.",
        f"Model: {results['model']['path']} (sha256 {results['model']['sha256'][:12]}). "
        f"Inputs: {results['inputs']['digit_source']}, as a "
        f"{results['inputs']['files']['png']['bytes']}-byte PNG and a "
        f"{results['inputs']['files']['jpeg']['bytes'] / 1000:.0f} kB 300×300 JPEG photo.",
    ]
    load = results.get("load")
    if load:
        lines += [
            "",
            f"## Load: one uvicorn worker each, server on CPU {args.server_cpus or 'any'}, "
            f"wrk -t1 on CPU {args.wrk_cpus or 'any'}, "
            f"{args.rounds} round{'s' if args.rounds != 1 else ''} of {args.duration:g} s per cell",
            "",
            "Service: `python -m app`"
            + "".join(f", {k}={v}" for k, v in args.service_env.items())
            + "; no-op, bare and naive: "
            "`uvicorn APP --loop uvloop --http httptools --no-access-log`.",
            "",
            *load_table(load["cells"], args.servers),
            "",
            "Each cell: the median of its rounds (the servers take turns within a round); "
            "service / no-op and service / naive: the median of the rounds' ratios. "
            "errors: no-op/naive/service, connection errors + non-2xx; other CPU: the most "
            "any other process took during the row, % of a core (⚠: above "
            f"{args.max_disturbance}% even after {args.retries} re-runs).",
        ]
        if "bare" in args.servers:
            lines += [
                "",
                "### The work alone: bare (`bench/bare_app.py`)",
                "",
                *floor_table(load["cells"]),
                "",
                "bare: the service's preprocessing and network (LiteRT, batch of one) behind "
                "a bare ASGI callable, no framework, log, metrics or batcher. bare / no-op: "
                "what the work leaves of the HTTP ceiling; service / bare: what the rest of "
                "the service costs. Medians of the paired rounds' ratios.",
            ]
    cold = results.get("cold")
    if cold or (load and load.get("rss_after_load")):
        lines += ["", "## Cold start and memory", ""]
        lines += ["| server | cold start, median (runs) | RSS after load | peak RSS |"]
        lines += ["|---|---:|---:|---:|"]
        for name in args.servers:
            c = (cold or {}).get(name)
            r = ((load or {}).get("rss_after_load") or {}).get(name)
            cold_text = (
                f"{c['median_s']:.2f} s ({', '.join(f'{s:.2f}' for s in c['seconds'])})"
                if c
                else "–"
            )
            rss_text = f"{r['rss_mb']:.0f} MB" if r else "–"
            peak_text = f"{r['peak_mb']:.0f} MB" if r else "–"
            lines.append(f"| {name} | {cold_text} | {rss_text} | {peak_text} |")
        first = (cold or {}).get("service first start (converts the model)")
        if first:
            lines.append(f"\nFirst start with an unconverted model: {first['seconds'][0]:.1f} s.")
        lines.append(
            "\nCold start: spawn to the first 200 on /health/ready (conversion cache warm); "
            "the service as shipped, `python -m app`."
        )
    soak = results.get("soak")
    if soak:
        wrk = soak["wrk"]
        rss = ", ".join(
            f"{w['first_mb']:.0f} → {w['settled_mb']:.0f} → {w['last_mb']:.0f} MB "
            f"(max {w['max_mb']:.0f})"
            for w in soak["rss"].values()
        )
        answers = ", ".join(
            f"{kind} {'/'.join(f'{status}×{n:,}' for status, n in statuses.items())}"
            for kind, statuses in wrk["answers"].items()
        )
        verdict = "as documented" if soak["check"]["ok"] else "; ".join(soak["check"]["problems"])
        lines += [
            "",
            f"## Soak: `{soak['command']}`, {soak['connections']} connections, "
            f"{soak['duration_s']:.0f} s, connections split "
            f"{'/'.join(soak['mix'])}",
            "",
            "| req/s | p50 ms | p99 ms | answers (kind status×count) | connection errors | "
            "restarts | worker RSS start → 1/4 → end | verdict |",
            "|---:|---:|---:|---|---:|---:|---|---|",
            f"| {fmt(wrk['rps'])} | {ms(wrk['p50_ms'])} | {ms(wrk['p99_ms'])} | {answers} | "
            f"{wrk['connection_errors']} | {soak['restarts']} | {rss} | {verdict} |",
            "",
            f"Server and wrk not pinned; other processes took {wrk['other_cpu_percent']}% "
            "of a core meanwhile. Each wrk thread sends one kind, so every answer is "
            "checked against its own upload's documented status and body.",
        ]
    rows = targets(results)
    if rows:
        lines += ["", "## Targets (issues 4 and 7)", "", "| target | required | measured | met |"]
        lines += ["|---|---:|---:|:---:|"]
        for target, required, measured, met in rows:
            lines.append(f"| {target} | {required} | {measured} | {'yes' if met else '**no**'} |")
    return "\n".join(lines)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="short smoke run (1-5 s per part)")
    parser.add_argument("--parts", default=",".join(PARTS), help="load,cold,soak")
    parser.add_argument("--servers", default=",".join(SERVERS), help=",".join(SERVERS))
    parser.add_argument("--images", default=",".join(IMAGES), help="png,jpeg")
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
