"""The soak: ``python -m app`` with several workers under a mix of valid and invalid
uploads, every answer checked, worker RSS sampled, restarts counted."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

from bench.inputs import Input
from bench.load import check_answer, post, run_wrk
from bench.servers import make_server, wait_quiet
from bench.system import CpuWatch, rss_mb

# One wrk thread per entry, each on connections / len(SOAK_MIX) connections.
SOAK_MIX = ("png", "png", "png", "jpeg", "jpeg", "empty", "random", "blank")


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
