"""Build the container image's environment without Docker, from the Dockerfile itself.

No Docker engine runs where these tests run, so this follows the Dockerfile
instruction by instruction instead: each stage gets a folder standing for its
root filesystem, the builder's ENV, WORKDIR, COPY (through .dockerignore) and RUN
lines are carried out as written (a fresh venv, the same `pip install`, the same
conversion), the runtime stage copies from the builder what its COPY --from lines
name, and its CMD then runs with its ENV, but on 127.0.0.1 and a free port. The
test waits for readiness, runs the HEALTHCHECK command, reads one digit, and stops
the server with the STOPSIGNAL. Change the Dockerfile and this changes with it.

What differs from a real build, on purpose:
- the base image's Python is this machine's interpreter of the same minor version;
- pip uses this machine's configuration (index, cache, proxies) and `--no-cache-dir`
  is dropped, so a second run reuses the downloaded wheels: how fast, not what;
- the runtime stage's RUN lines (creating the user) are skipped, and the server
  runs as the current user. A real container cannot write to its root filesystem;
  here the test checks instead that the server wrote nothing under the image's
  folders (no conversion, no bytecode, no cache).
"""

from __future__ import annotations

import io
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from PIL import Image, ImageDraw

from app.inference import file_sha256
from tests.conftest import AUTO_ENGINE, free_port
from tests.deploy import dockerfile
from tests.deploy.dockerfile import PROJECT_ROOT, Instruction, Stage, is_ignored

BUILD_TIMEOUT_S = 600
MAX_VENV_BYTES = 400 * 1024 * 1024  # issue 18: the runtime's packages, installed
READY_TIMEOUT_S = 60
# Folders the base image owns; every other absolute path is the image's own.
SYSTEM_PATHS = ("/usr/sbin", "/usr/bin", "/sbin", "/bin", "/lib", "/etc", "/tmp", "/dev")
BASE_PATH = "/usr/local/bin:/usr/local/sbin:/usr/sbin:/usr/bin:/sbin:/bin"  # python:*-slim's
PASSED_THROUGH = ("HOME", "http_proxy", "https_proxy", "no_proxy", "SSL_CERT_FILE")

pytestmark = [pytest.mark.slow, pytest.mark.timeout(BUILD_TIMEOUT_S + 120)]


class StageRoot:
    """A folder standing for one stage's root filesystem."""

    def __init__(self, folder: Path, base_bin: Path):
        self.folder = folder
        self.base_bin = base_bin  # stands for the base image's /usr/local/bin
        self.workdir = "/"

    def path(self, container_path: str) -> Path:
        absolute = os.path.normpath(os.path.join(self.workdir, container_path))
        return self.folder / absolute.lstrip("/")

    def rooted(self, value: str) -> str:
        """An ENV value with its container paths moved under this root (PATH-like too)."""
        parts = []
        for part in value.split(":"):
            if part == "/usr/local/bin":
                part = str(self.base_bin)
            elif part.startswith("/") and not part.startswith(SYSTEM_PATHS):
                part = str(self.path(part))
            parts.append(part)
        return ":".join(parts)

    def environment(self, stage_env: dict[str, str]) -> dict[str, str]:
        env = {key: self.rooted(value) for key, value in stage_env.items()}
        return {"LANG": "C.UTF-8", **env}


def base_interpreter_bin(folder: Path) -> Path:
    """A stand-in for the base image's /usr/local/bin: python, python3, python3.X."""
    folder.mkdir(parents=True)
    real = Path(getattr(sys, "_base_executable", sys.executable)).resolve()
    for name in ("python", "python3", f"python3.{sys.version_info.minor}"):
        (folder / name).symlink_to(real)
    return folder


def copy_from_context(root: StageRoot, instruction: Instruction) -> None:
    _, words = instruction.flags_and_arguments()
    *sources, destination = words
    for source in sources:
        assert not is_ignored(source), f"line {instruction.line}: {source} is not in the context"
        origin = PROJECT_ROOT / source
        if origin.is_dir():
            target = root.path(destination)
            for file in origin.rglob("*"):
                relative = file.relative_to(PROJECT_ROOT).as_posix()
                if file.is_file() and not is_ignored(relative):
                    copied = target / file.relative_to(origin)
                    copied.parent.mkdir(parents=True, exist_ok=True)
                    shutil.copy2(file, copied)
        else:
            target = root.path(destination)
            if destination.endswith("/") or len(sources) > 1:
                target = target / origin.name
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(origin, target)


def copy_from_stage(source_root: StageRoot, root: StageRoot, instruction: Instruction) -> None:
    _, words = instruction.flags_and_arguments()
    *sources, destination = words
    for source in sources:
        origin, target = source_root.path(source), root.path(destination)
        if origin.is_dir():  # hard links, not copies
            shutil.copytree(origin, target, symlinks=True, copy_function=os.link)
        else:
            target.parent.mkdir(parents=True, exist_ok=True)
            os.link(origin, target / origin.name if destination.endswith("/") else target)


def run_step(root: StageRoot, env: dict[str, str], instruction: Instruction) -> None:
    command = instruction.exec_form() or [
        "/bin/sh",
        "-c",
        instruction.value.replace(" --no-cache-dir", ""),
    ]
    passed = {k: v for k, v in os.environ.items() if k in PASSED_THROUGH or k.startswith("PIP_")}
    result = subprocess.run(
        command,
        cwd=root.path("."),
        env={**passed, **root.environment(env)},
        capture_output=True,
        text=True,
        timeout=BUILD_TIMEOUT_S,
    )
    assert result.returncode == 0, (
        f"line {instruction.line}: RUN {instruction.value}\n{result.stdout[-3000:]}"
        f"\n{result.stderr[-3000:]}"
    )


BASE_ENV = {"PATH": BASE_PATH}


def build_stage(
    stage: Stage, root: StageRoot, stages: dict[str, StageRoot], *, builder: bool
) -> dict[str, str]:
    """Carry out one stage's instructions; return its ENV (container terms)."""
    env = dict(BASE_ENV)
    for instruction in stage.instructions:
        keyword = instruction.keyword
        if keyword == "ENV":
            env.update(dockerfile.parse_env(instruction.value, env))
        elif keyword == "WORKDIR":
            root.workdir = os.path.join(root.workdir, instruction.value)
            root.path(".").mkdir(parents=True, exist_ok=True)
        elif keyword == "COPY":
            flags, _ = instruction.flags_and_arguments()
            if "from" in flags:
                copy_from_stage(stages[flags["from"]], root, instruction)
            else:
                copy_from_context(root, instruction)
        elif keyword == "RUN" and builder:
            run_step(root, env, instruction)
        elif keyword == "RUN":  # the runtime stage may only create the service's user
            assert instruction.value.startswith(("groupadd", "useradd")), (
                f"line {instruction.line}: a RUN this test does not follow in the runtime "
                "stage; teach tests/deploy/test_image_environment.py"
            )
        elif keyword in ("ARG", "LABEL", "USER", "EXPOSE", "HEALTHCHECK", "STOPSIGNAL", "CMD"):
            pass  # metadata: checked in test_dockerfile.py, used below
        else:
            pytest.fail(f"line {instruction.line}: {keyword} is not followed here; teach the test")
    return env


def snapshot(folder: Path) -> dict[str, tuple[int, int]]:
    return {
        str(path.relative_to(folder)): (path.stat().st_mtime_ns, path.stat().st_size)
        for path in folder.rglob("*")
        if not path.is_symlink()
    }


def digit_png() -> bytes:
    """A thick dark "1" on light paper."""
    image = Image.new("L", (200, 200), 235)
    ImageDraw.Draw(image).line([(100, 30), (100, 170)], fill=20, width=18)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.fixture(scope="module")
def image() -> Iterator[tuple[dockerfile.Dockerfile, dict[str, StageRoot], dict[str, str]]]:
    parsed = dockerfile.parse()
    python = f"{sys.version_info.major}.{sys.version_info.minor}"
    if not parsed.final.base.startswith(f"python:{python}."):
        pytest.skip(f"the image's Python is {parsed.final.base}; this one is {python}")
    assert (PROJECT_ROOT / "model" / "artifacts" / "digitnet.keras").is_file(), (
        "the Dockerfile bakes in model/artifacts/digitnet.keras, which is missing"
    )
    folder = Path(tempfile.mkdtemp(prefix="digits-image-"))
    try:
        base_bin = base_interpreter_bin(folder / "base-bin")
        roots: dict[str, StageRoot] = {}
        env: dict[str, str] = {}
        for number, stage in enumerate(parsed.stages):
            name = stage.name or str(number)
            roots[name] = StageRoot(folder / f"stage-{name}", base_bin)
            env = build_stage(stage, roots[name], roots, builder=number == 0)
        yield parsed, roots, env
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def test_the_image_environment_serves_a_prediction(image) -> None:
    parsed, roots, final_env = image
    runtime = list(roots.values())[-1]
    port = free_port()
    env = {**runtime.environment(final_env), "HOST": "127.0.0.1", "PORT": str(port)}
    command = parsed.final.one("CMD").exec_form()
    healthcheck = Instruction(
        "CMD", parsed.final.one("HEALTHCHECK").value.partition(" CMD ")[2].strip(), 0
    ).exec_form()
    stop_signal = getattr(signal, parsed.final.one("STOPSIGNAL").value)
    before = snapshot(runtime.folder)
    log = runtime.folder.parent / "server.log"

    with log.open("w") as output:
        started = time.perf_counter()
        server = subprocess.Popen(
            command, cwd=runtime.path("."), env=env, stdout=output, stderr=subprocess.STDOUT
        )
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + READY_TIMEOUT_S
        while True:
            assert server.poll() is None, f"the server exited:\n{log.read_text()}"
            assert time.monotonic() < deadline, (
                f"not ready in {READY_TIMEOUT_S} s\n{log.read_text()}"
            )
            try:
                if httpx.get(f"{url}/health/ready", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        cold_start = time.perf_counter() - started
        print(f"image environment: ready {cold_start:.2f} s after start")

        check = subprocess.run(healthcheck, env=env, capture_output=True, text=True, timeout=10)
        assert check.returncode == 0, f"HEALTHCHECK failed: {check.stderr}"

        response = httpx.post(
            f"{url}/predict", files={"file": ("one.png", digit_png(), "image/png")}, timeout=10
        )
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["digit"] == 1, body
        assert len(body["probabilities"]) == 10
        assert abs(sum(body["probabilities"]) - 1) < 1e-3
        assert body["confidence"] == pytest.approx(max(body["probabilities"]))

        served = httpx.get(f"{url}/model", timeout=5).json()
        baked = runtime.path("model/artifacts/digitnet.keras")
        assert served["sha256"] == file_sha256(baked), "the baked-in model is the one served"
        assert served["engine"] == AUTO_ENGINE
    finally:
        server.send_signal(stop_signal)
        code = server.wait(30)
    assert code == 0, f"exit status {code} after {stop_signal.name}\n{log.read_text()}"
    assert "converting" not in log.read_text(), "the conversion baked at build time was unused"
    written = {k for k, v in snapshot(runtime.folder).items() if before.get(k) != v}
    assert not written, f"the server wrote into the image's filesystem: {sorted(written)[:10]}"


def test_the_image_environment_has_no_training_framework_and_fits(image) -> None:
    _, roots, final_env = image
    runtime = list(roots.values())[-1]
    env = runtime.environment(final_env)
    found = subprocess.run(
        [
            *("python", "-c"),
            "import importlib.util as u; print([n for n in ('tensorflow', 'keras', "
            "'matplotlib') if u.find_spec(n)])",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert found.stdout.strip() == "[]", found.stdout + found.stderr
    venv = runtime.path(final_env["VIRTUAL_ENV"])
    size = sum(f.stat().st_size for f in venv.rglob("*") if f.is_file() and not f.is_symlink())
    print(f"image environment: the venv holds {size / 1e6:.0f} MB")
    assert size <= MAX_VENV_BYTES, f"{size / 1e6:.0f} MB; the target is ≤ 400 MB"


def test_the_installed_environment_is_the_lock(image) -> None:
    _, roots, final_env = image
    runtime = list(roots.values())[-1]
    env = runtime.environment(final_env)
    frozen = subprocess.run(
        ["python", "-m", "pip", "freeze", "--all", "--exclude", "pip"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    ).stdout
    locked = (PROJECT_ROOT / "deploy" / "requirements.txt").read_text()
    expected = {line.lower() for line in locked.splitlines() if line and not line.startswith("#")}
    assert {line.lower() for line in frozen.splitlines()} == expected
