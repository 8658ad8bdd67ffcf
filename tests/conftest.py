"""Shared fixtures: the app in-process, a real server on 127.0.0.1, digit images."""

from __future__ import annotations

import asyncio
import io
import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image

from app import precision
from app.config import DEFAULT_MODEL_PATH, Settings
from app.main import create_app
from model import augment, data, realdigits

PROJECT_ROOT = Path(__file__).resolve().parent.parent
# What INFERENCE_ENGINE=auto serves the shipped model with on this machine's CPU.
AUTO_ENGINE = "litert-int8" if precision.this_cpu_has_int8_dot_product() else "litert"
pytest_plugins = ["pytester"]


def in_ci() -> bool:
    """CI sets CI=true (.ci/run does too): there a test that cannot run fails."""
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")


def require(condition: object, reason: str) -> None:
    """Go on only if ``condition`` holds: else skip with ``reason`` on a developer's
    machine, and fail in CI, where a suite that did not run must not look green."""
    if condition:
        return
    if in_ci():
        pytest.fail(f"{reason} (CI=true: what a test needs must be there)", pytrace=False)
    pytest.skip(reason)


@pytest.fixture(scope="session")
def model_path() -> Path:
    path = Path(os.environ.get("MODEL_PATH", DEFAULT_MODEL_PATH))
    assert path.is_file(), f"the shipped model {path} is missing"
    return path


@pytest.fixture(scope="session")
def settings(model_path: Path) -> Settings:
    return Settings(model_path=model_path)


@pytest.fixture(scope="session")
def client(settings: Settings) -> Iterator[TestClient]:
    """The app with its lifespan run: model loaded and warmed."""
    with TestClient(create_app(settings)) as test_client:
        yield test_client


def mnist_files_present() -> bool:
    """Whether the four MNIST files are where the loader looks, checked or not."""
    explicit = os.environ.get("MNIST_DIR")
    folders = [Path(explicit)] if explicit else [data.SHARED_MNIST_DIR, data.CACHE_DIR]
    return any(all((folder / name).is_file() for name in data.CHECKSUMS) for folder in folders)


@pytest.fixture(scope="session")
def mnist() -> data.Mnist:
    """MNIST from MNIST_DIR or ../shared/data/mnist (never downloaded). Absent: a skip,
    or a failure in CI. Present but corrupt (a checksum mismatch): always a failure."""
    require(mnist_files_present(), "MNIST not found: set MNIST_DIR or fill ../shared/data/mnist")
    return data.load(download=False)


def fonts(training: bool) -> list[Path]:
    """The fonts non-digits are drawn in (``augment.fonts``). A family missing: a skip,
    or a failure in CI (.ci/run installs them)."""
    try:
        return augment.fonts(training)
    except augment.MissingFontsError as error:
        require(False, str(error))
        raise


@pytest.fixture(scope="session")
def real_digits() -> realdigits.RealDigits:
    """pendigits and optdigits from REALDIGITS_DIR or ../shared/data/realdigits. Absent: a
    skip, or a failure in CI. Present but corrupt: always a failure."""
    folder = Path(os.environ.get("REALDIGITS_DIR") or realdigits.SHARED_DIR)
    require(
        all((folder / name).is_file() for name in realdigits.CHECKSUMS),
        f"real handwriting not found in {folder}: set REALDIGITS_DIR or fill "
        "../shared/data/realdigits",
    )
    return realdigits.load(folder)


def png_bytes(pixels: np.ndarray | Image.Image, format: str = "PNG", **options) -> bytes:
    image = pixels if isinstance(pixels, Image.Image) else Image.fromarray(pixels)
    buffer = io.BytesIO()
    image.save(buffer, format=format, **options)
    return buffer.getvalue()


def sheared(image: Image.Image, slant: float) -> Image.Image:
    """A grey image on white leaning by ``slant`` (its top to the right for slant > 0),
    widened to keep it all."""
    extra = round(abs(slant) * image.height)
    shear = (1, slant, -extra if slant > 0 else 0, 0, 1, 0)
    return image.transform(
        (image.width + extra, image.height), Image.Transform.AFFINE, shear, fillcolor=255
    )


@pytest.fixture(scope="session")
def training_digits(mnist: data.Mnist) -> tuple[np.ndarray, np.ndarray]:
    """A fixed sample of *training* images (the test set is for final evaluation only)."""
    order = np.random.default_rng(7).permutation(len(mnist.train.labels))[:500]
    return mnist.train.images[order], mnist.train.labels[order]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class LiveServer:
    """`python -m app` in a child process on 127.0.0.1, as `make run` starts it."""

    def __init__(self, env: dict[str, str] | None = None, command: list[str] | None = None):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = {**os.environ, "HOST": "127.0.0.1", "PORT": str(self.port), **(env or {})}
        self.command = command or [sys.executable, "-m", "app"]
        self.process: subprocess.Popen[str] | None = None
        # A file, not a pipe: nobody reads while it runs, and a full pipe would
        # block the server at its next log line (one JSON line per request).
        handle, name = tempfile.mkstemp(prefix="digits-server-", suffix=".log")
        os.close(handle)
        self.log_path = Path(name)

    def output(self) -> str:
        """Everything the server has written so far (its JSON log lines)."""
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def start(self, timeout: float = 60.0) -> LiveServer:
        with self.log_path.open("a") as log:  # the server appends; we read at will
            self.process = subprocess.Popen(
                self.command,
                cwd=PROJECT_ROOT,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                text=True,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                output = self.output()
                raise RuntimeError(f"server exited with {self.process.returncode}:\n{output}")
            try:
                if httpx.get(f"{self.url}/health/ready", timeout=1.0).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"server not ready after {timeout} s")

    def stop(self, timeout: float = 20.0) -> str:
        if self.process is None:
            return ""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None
        output = self.output()
        self.log_path.unlink(missing_ok=True)
        return output


@pytest.fixture(scope="session")
def live_server(model_path: Path) -> Iterator[LiveServer]:
    server = LiveServer({"MODEL_PATH": str(model_path)}).start()
    yield server
    server.stop()


@pytest.fixture
def make_server() -> Iterator[Callable[..., LiveServer]]:
    """Start servers with custom settings; each is stopped after the test."""
    started: list[LiveServer] = []

    def start(env: dict[str, str] | None = None, **kwargs) -> LiveServer:
        server = LiveServer(env, **kwargs)
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


def http_scope(
    method: str, path: str, headers: list[tuple[bytes, bytes]], query: bytes = b""
) -> dict:
    """An ASGI HTTP scope, for requests no HTTP client will send (odd headers, a
    client that leaves mid-body): call the app with it directly."""
    return {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "root_path": "",
        "query_string": query,
        "headers": headers,
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 8000),
        "state": {},
    }


def gone_mid_body(app, scope: dict, first_bytes: bytes) -> list[dict]:
    """What ``app`` sends for a request whose client sends ``first_bytes`` of the body,
    more to come, and then disconnects."""
    messages = [
        {"type": "http.request", "body": first_bytes, "more_body": True},
        {"type": "http.disconnect"},
    ]
    sent: list[dict] = []

    async def receive() -> dict:
        return messages.pop(0) if messages else {"type": "http.disconnect"}

    async def send(message: dict) -> None:
        sent.append(message)

    asyncio.run(app(scope, receive, send))
    return sent
