"""Load generation: wrk against one server, a cell measured in rounds, every server in turn;
the service's own metrics read around each of its runs."""

from __future__ import annotations

import json
import os
import statistics
import subprocess
from pathlib import Path

import httpx
from prometheus_client.parser import text_string_to_metric_families

from bench.inputs import Input
from bench.servers import Server, make_server, wait_idle, wait_quiet
from bench.system import CpuWatch, pinned, rss_mb

BENCH_DIR = Path(__file__).resolve().parent
CONNECTION_ERRORS = ("connect", "read", "write", "timeout")
READ_CONNECTIONS = (1, 64)  # the /read row's cells
# The service's own histograms (app/observability.py) read around each of its runs, and
# the unit each mean is reported in.
SERVICE_HISTOGRAMS = {
    "digits_preprocess_seconds": ("preprocess_us", 1e6),  # per upload
    "digits_inference_seconds": ("inference_us", 1e6),  # per network call
    "digits_batch_size": ("batch_size", 1.0),  # requests per micro-batch
}


def scrape(url: str) -> str:
    """The service's /metrics exposition."""
    return httpx.get(f"{url}/metrics", timeout=10.0).text


def histogram_totals(exposition: str) -> dict[str, tuple[float, float]]:
    """The sum and count of each of SERVICE_HISTOGRAMS in a Prometheus exposition."""
    totals = {}
    for family in text_string_to_metric_families(exposition):
        if family.name in SERVICE_HISTOGRAMS:
            sums = [s.value for s in family.samples if s.name == f"{family.name}_sum"]
            counts = [s.value for s in family.samples if s.name == f"{family.name}_count"]
            totals[family.name] = (sum(sums), sum(counts))
    return totals


def histogram_means(before: dict, after: dict) -> dict[str, float | None]:
    """Each histogram's mean over what was observed between two ``histogram_totals``."""
    means: dict[str, float | None] = {}
    for name, (key, unit) in SERVICE_HISTOGRAMS.items():
        total_after, count_after = after.get(name, (0.0, 0.0))
        total_before, count_before = before.get(name, (0.0, 0.0))
        count = count_after - count_before
        means[key] = round((total_after - total_before) / count * unit, 1) if count else None
    return means


def run_wrk(
    url: str,
    script: str,
    script_args: list[str],
    connections: int,
    duration: float,
    cpus: str | None,
    threads: int = 1,
    route: str = "/predict",
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
        f"{url}{route}",
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
        observed = histogram_totals(scrape(server.url)) if server.name == "service" else None
        with CpuWatch(server.workers()) as watch:
            result = run_wrk(
                server.url,
                "multipart.lua",
                [str(upload.path), upload.content_type],
                connections,
                duration,
                wrk_cpus,
                route=upload.route,
            )
        result.update(
            other_cpu_percent=watch.other_cpu_percent,
            server_cpu_percent=watch.server_cpu_percent,
            load_before=round(load_before, 2),
            waited_for_quiet_s=round(waited, 1),
        )
        if observed is not None:  # what the service's own metrics saw during the run
            after = histogram_totals(scrape(server.url))
            result["service_metrics"] = histogram_means(observed, after)
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
    if all("service_metrics" in r for r in rounds):  # each mean: the median of the rounds'
        cell["service_metrics"] = {}
        for key in rounds[0]["service_metrics"]:
            values = [r["service_metrics"][key] for r in rounds]
            cell["service_metrics"][key] = None if None in values else statistics.median(values)
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
    answer = "number" if response.url.path == "/read" else "digit"
    if expected == 200 and server != "noop" and answer not in body:
        raise RuntimeError(f"{server}: no {answer} in {body}")
    if expected != 200 and set(body) != {"detail"}:
        raise RuntimeError(f"{server}: expected a JSON detail, got {body}")
    return body


def post(url: str, upload: Input) -> httpx.Response:
    files = {"file": (upload.path.name, upload.path.read_bytes(), upload.content_type)}
    return httpx.post(f"{url}{upload.route}", files=files, timeout=30.0)


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
            # Only the service reads numbers: /read runs on it alone, at 1 and 64
            # connections (or those of --connections).
            reading = upload.route == "/read"
            cell_servers = {n: s for n, s in servers.items() if n == "service" or not reading}
            connection_counts = [
                c for c in args.connections if not reading or c in READ_CONNECTIONS
            ] or args.connections
            print(f"\n{image}: warming up", flush=True)
            for name, server in cell_servers.items():
                body = check_answer(name, post(server.url, upload), 200)
                answers[f"{name}/{image}"] = body.get("number" if reading else "digit", body)
                wait_idle(server)
                run_wrk(
                    server.url,
                    "multipart.lua",
                    wrk_args,
                    max(connection_counts),
                    args.warmup,
                    args.wrk_cpus,
                    route=upload.route,
                )
                wait_idle(server)
            for connections in connection_counts:
                rounds: dict[str, list[dict]] = {name: [] for name in cell_servers}
                for number in range(1, args.rounds + 1):
                    for name, server in cell_servers.items():
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
