"""The servers under test, started on 127.0.0.1 and stopped again, and their cold start.

- ``noop``: ``bench/noop_app.py``, FastAPI reading the multipart upload and nothing else;
- ``bare``: ``bench/bare_app.py``, the service's preprocessing and network behind a
  bare ASGI callable;
- ``naive``: ``bench/naive_app.py``, ``model.predict`` per request;
- ``service``: ``python -m app``, as deployed.
"""

from __future__ import annotations

import contextlib
import os
import signal
import statistics
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from bench.system import PROJECT_ROOT, CpuWatch, cmdline, cpu_seconds, free_port, pinned, proc_tree

RESULTS_DIR = PROJECT_ROOT / "bench" / "results"
SERVERS = ("noop", "bare", "naive", "service")
UVICORN_OPTIONS = [
    "--host",
    "127.0.0.1",
    "--workers",
    "1",
    "--loop",
    "asyncio",  # as the service (EVENT_LOOP): uvloop starves new connections under load
    "--http",
    "httptools",
    "--no-access-log",
    "--log-level",
    "warning",
]


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
    (asyncio, EVENT_LOOP), parser (httptools) and no uvicorn access log; it logs its own JSON
    line per request at LOG_LEVEL=info, as in production. ``--service-env``
    adds settings (LOG_LEVEL=warning, BATCH_MAX_WAIT_MS=1, ...).
    """
    env = {"MODEL_PATH": str(args.model), "TF_CPP_MIN_LOG_LEVEL": "2"}
    if name == "service":
        env.update(WORKERS=str(workers), **args.service_env)
        return Server(name, [args.server_python, "-m", "app"], env, args.server_cpus, log_dir)
    target = {
        "noop": "bench.noop_app:app",
        "bare": "bench.bare_app:app",
        "naive": "bench.naive_app:app",
    }[name]
    command = [args.server_python, "-m", "uvicorn", target, *UVICORN_OPTIONS, "--port", "{port}"]
    return Server(name, command, env, args.server_cpus, log_dir)


def run_cold(args, log_dir: Path) -> dict:
    from app.inference import converted_path, file_sha256, read_card, shipped_litert

    results = {}
    # The image compiles the app at build time (Dockerfile): start from compiled modules
    # here too, even where PYTHONDONTWRITEBYTECODE would have every start compile them.
    compiled = [args.server_python, "-m", "compileall", "-q", "app", "bench"]
    subprocess.run(compiled, cwd=PROJECT_ROOT, check=True)
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
