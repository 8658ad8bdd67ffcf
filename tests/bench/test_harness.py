"""The load benchmark's harness runs and its results parse (not how fast anything is)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry

from app.observability import Metrics
from bench.inputs import write_inputs
from bench.load import combine_rounds, histogram_means, histogram_totals, ratio
from bench.report import floor_table, load_table, service_metrics_table, targets
from bench.soak import soak_check
from tests.conftest import require

PROJECT_ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_quick_run_against_the_noop_app(tmp_path: Path) -> None:
    require(shutil.which("wrk"), "wrk not installed: apt-get install wrk (.ci/run does it)")
    command = [sys.executable, "-m", "bench.run", "--quick", "--parts", "load"]
    command += ["--servers", "noop", "--images", "png", "--connections", "1,64"]
    command += ["--results-dir", str(tmp_path)]
    # ~10 s on a quiet machine; on a busy one each cell first waits for quiet (up to 2 s).
    completed = subprocess.run(
        command, cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=60, check=False
    )
    assert completed.returncode == 0, completed.stdout + completed.stderr
    results = json.loads((tmp_path / "latest.json").read_text())
    cells = results["load"]["cells"]
    assert {(c["image"], c["connections"]) for c in cells} == {("png", 1), ("png", 64)}
    for cell in cells:
        assert cell["requests"] > 0 and cell["rps"] > 0
        assert 0 < cell["p50_ms"] <= cell["p99_ms"]
        assert cell["connection_errors"] == 0 and cell["errors"]["status"] == 0
    assert results["load"]["rss_after_load"]["noop"]["rss_mb"] > 0
    assert "| 28×28 PNG | 64 |" in (tmp_path / "latest.md").read_text()


def test_the_soak_check_finds_undocumented_answers(tmp_path: Path) -> None:
    inputs, _ = write_inputs(tmp_path)
    result = {
        "answers": {"png": {"200": 90}, "empty": {"400": 9, "200": 1}, "blank": {"422": 10}},
        "undocumented": {"png": 0, "empty": 1, "blank": 2},
        "errors": {"connect": 0, "read": 0, "write": 0, "status": 19, "timeout": 0},
        "connection_errors": 0,
    }
    problems = soak_check(result, inputs)["problems"]
    assert problems == [
        "blank: 2 undocumented answers",
        "empty: expected 400, got {'200': 1}",
        "empty: 1 undocumented answers",
    ]
    result["answers"]["empty"] = {"400": 10}
    result["undocumented"] = {"png": 0, "empty": 0, "blank": 0}
    assert soak_check(result, inputs) == {"problems": [], "ok": True}


def measured(rps: float, p99: float, status_errors: int = 0, other_cpu: float = 1.0) -> dict:
    return {
        "rps": rps,
        "p50_ms": p99 / 2,
        "p99_ms": p99,
        "connection_errors": 0,
        "errors": {"connect": 0, "status": status_errors},
        "attempts": 1,
        "other_cpu_percent": other_cpu,
        "disturbed": False,
    }


def test_a_cell_is_the_median_of_its_rounds_with_every_error_counted() -> None:
    cell = combine_rounds(
        [measured(900, 90), measured(700, 80, status_errors=2), measured(800, 400, other_cpu=7)]
    )
    assert (cell["rps"], cell["p50_ms"], cell["p99_ms"]) == (800, 45, 90)  # one stall ignored
    assert cell["rounds_rps"] == [900, 700, 800]
    assert cell["errors"]["status"] == 2 and cell["attempts"] == 3
    assert cell["other_cpu_percent"] == 7


def test_ratios_pair_the_rounds_run_side_by_side() -> None:
    service = combine_rounds([measured(1000, 1), measured(500, 1), measured(900, 1)])
    noop = combine_rounds([measured(2000, 1), measured(1000, 1), measured(3000, 1)])
    # Round by round 50 %, 50 %, 30 %; the medians alone would say 900 / 2000 = 45 %.
    assert ratio(service, noop) == 0.5
    assert ratio(measured(10, 1), measured(20, 1)) == 0.5  # a cell of one round


def test_the_bare_server_gets_its_own_table_between_the_noop_and_the_service() -> None:
    rounds = {
        "noop": [measured(2000, 1), measured(3000, 1), measured(1000, 1)],
        "bare": [measured(1000, 1), measured(1200, 1), measured(500, 1)],
        "service": [measured(700, 1), measured(600, 1), measured(300, 1)],
    }
    cells = []
    for name, measured_rounds in rounds.items():
        cells.append({**combine_rounds(measured_rounds), "server": name})
        cells[-1].update(image="png", connections=64)

    # bare / no-op per round 50, 40, 50 %; service / bare 70, 50, 60 %.
    assert floor_table(cells)[2] == "| 28×28 PNG | 64 | 1,000.0 | 0.50 | 1.00 | 50% | 60% | 0 |"
    main = load_table(cells, ["noop", "bare", "service"])
    assert "bare" not in main[0] and main[2].count("|") == main[0].count("|")


def test_the_service_metrics_of_a_run_are_the_means_of_what_it_observed() -> None:
    """Read from the service's own exposition before and after: what came between."""
    metrics = Metrics(CollectorRegistry())
    metrics.observe_prediction(3, 0.9, preprocess_seconds=0.5)  # before the run
    metrics.observe_batch(1)
    before = histogram_totals(metrics.exposition().decode())
    for seconds in (0.000100, 0.000140):
        metrics.observe_prediction(7, 0.99, preprocess_seconds=seconds)
    metrics.observe_inference(0.002)
    for size in (20, 24):
        metrics.observe_batch(size)
    means = histogram_means(before, histogram_totals(metrics.exposition().decode()))
    assert means == {"preprocess_us": 120.0, "inference_us": 2000.0, "batch_size": 22.0}
    assert histogram_means(before, before) == dict.fromkeys(means)  # nothing observed

    rounds = [
        {**measured(1000, 1), "service_metrics": {**means, "preprocess_us": us}}
        for us in (90, 130, 110)
    ]
    cell = {**combine_rounds(rounds), "server": "service", "image": "png", "connections": 64}
    assert service_metrics_table([cell])[2] == "| 28×28 PNG | 64 | 110.0 | 2,000.0 | 22.0 |"


def test_each_target_is_a_floor_or_a_ceiling_and_says_whether_it_is_met() -> None:
    def cell(server: str, rps: float, p99: float, connections: int = 64) -> dict:
        return {**measured(rps, p99), "server": server, "image": "png", "connections": connections}

    results = {
        "load": {
            "cells": [
                cell("noop", 2000, 30),
                cell("naive", 10, 3000),
                cell("service", 800, 40),
                cell("service", 600, 1.6, connections=1),
            ],
            "rss_after_load": {"service": {"rss_mb": 141.0, "peak_mb": 141.0}},
        },
        "cold": {"service": {"median_s": 1.2}},
    }
    rows = {target: (required, shown, met) for target, required, shown, met in targets(results)}
    assert rows["req/s vs no-op (64 conns, PNG)"] == ("≥ 50%", "40%", False)
    assert rows["req/s vs naive (64 conns, PNG)"] == ("≥ 100×", "80×", False)
    assert rows["p99 / p50 (64 conns, PNG)"] == ("≤ 2.5×", "2.0×", True)
    assert rows["p50 at 1 connection (PNG)"] == ("≤ 0.80 ms", "0.80 ms", True)
    assert rows["errors (all service cells)"] == ("0", "0", True)
    assert rows["cold start to ready (`python -m app`, median)"] == ("≤ 2.00 s", "1.20 s", True)
    assert rows["RSS per worker (after load; soak max)"] == ("≤ 200 MB", "141 MB", True)
    assert not any("JPEG" in target for target in rows)  # no photo measured, no row
    results["load"]["cells"][2]["p99_ms"] = 60.0  # three times its p50
    photos = [cell("service", 320, 5.0, connections=1), cell("service", 280, 200.0)]
    results["load"]["cells"] += [{**photo, "image": "jpeg"} for photo in photos]
    rows = {target: (required, shown, met) for target, required, shown, met in targets(results)}
    assert rows["p99 / p50 (64 conns, PNG)"] == ("≤ 2.5×", "3.0×", False)
    assert rows["300 px JPEG photo, req/s at 1 connection"] == ("≥ 300", "320", True)
    assert rows["300 px JPEG photo, req/s at 64 connections"] == ("≥ 300", "280", False)


@pytest.mark.slow
def test_mixed_load_reports_each_kind(tmp_path: Path) -> None:
    require(shutil.which("wrk"), "wrk not installed: apt-get install wrk (.ci/run does it)")
    command = [sys.executable, "-m", "bench.mixed", "--rounds", "1", "--duration", "1"]
    command += ["--png", "4", "--jpeg", "2", "--variant", "INLINE_MAX_PIXELS=65536"]
    completed = subprocess.run(
        command, cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=120, check=False
    )
    assert completed.returncode == 0, completed.stdout + completed.stderr
    rounds = [line for line in completed.stdout.splitlines() if line.startswith("round 1")]
    assert [line.split(":")[0] for line in rounds] == [
        "round 1, as shipped",
        "round 1, variant INLINE_MAX_PIXELS=65536",
    ]
    for line in rounds:
        for kind in ("jpeg", "png"):
            rate = float(line.split(f"{kind} ")[1].split(" req/s")[0].replace(",", ""))
            assert rate > 0
        assert line.count("errors 0") == 2, line
