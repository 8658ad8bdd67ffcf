"""The machine as the benchmark sees it: processes, their CPU and memory from /proc,
and how much CPU other processes take while something is measured."""

from __future__ import annotations

import contextlib
import os
import platform
import re
import resource
import socket
import subprocess
import time
from importlib import metadata
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent
TICKS = os.sysconf("SC_CLK_TCK")


def free_port() -> int:
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


def idle_check(seconds: float) -> float:
    """% of one core that other processes use while the benchmark is idle."""
    with CpuWatch([]) as watch:
        time.sleep(seconds)
    return watch.other_cpu_percent


def machine() -> dict:
    cpu = "unknown"
    with contextlib.suppress(OSError):
        match = re.search(r"^model name\s*:\s*(.+)$", Path("/proc/cpuinfo").read_text(), re.M)
        cpu = match.group(1).strip() if match else cpu
    memory = re.search(r"MemTotal:\s+(\d+)", Path("/proc/meminfo").read_text())
    versions = {}

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
