"""deploy/requirements.txt (the image's environment) agrees with pyproject.toml.

pyproject.toml's [project].dependencies choose the runtime dependencies; the lock
pins them and everything they pull in, for the image's platform. When this fails,
run ``.venv/bin/python deploy/lock_requirements.py``.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import platform
import re
import sys

import pytest
from packaging.markers import default_environment
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

from tests.deploy import dockerfile
from tests.deploy.dockerfile import PROJECT_ROOT

LOCK = PROJECT_ROOT / "deploy" / "requirements.txt"
REGENERATE = "run .venv/bin/python deploy/lock_requirements.py"


def _lock_module():
    spec = importlib.util.spec_from_file_location(
        "lock_requirements", PROJECT_ROOT / "deploy" / "lock_requirements.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


lock_requirements = _lock_module()


def locked() -> dict[str, Version]:
    pins = {}
    for raw in LOCK.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        match = re.fullmatch(r"([A-Za-z0-9._-]+)==([A-Za-z0-9.+!-]+)", line)
        assert match, f"{line!r}: every line of the lock is name==version"
        name = canonicalize_name(match.group(1))
        assert name not in pins, f"{name} is pinned twice"
        pins[name] = Version(match.group(2))
    return pins


def test_every_runtime_dependency_is_locked_within_its_specifier() -> None:
    pins = locked()
    for requirement in lock_requirements.image_requirements():
        name = canonicalize_name(requirement.name)
        assert name in pins, f"{requirement} is missing from the lock; {REGENERATE}"
        assert requirement.specifier.contains(pins[name], prereleases=True), (
            f"the lock pins {name}=={pins[name]} but pyproject.toml asks {requirement}; "
            f"{REGENERATE}"
        )


def test_the_image_gets_no_training_framework_and_no_dev_tools() -> None:
    pins = locked()
    assert "ai-edge-litert" in pins, "the service runs the shipped model on LiteRT"
    for extra in ("tensorflow", "tensorflow-cpu", "keras", "matplotlib", "h5py"):
        assert extra not in pins, f"{extra} is for training (the train extra), not serving"
    for extra in ("pytest", "httpx", "ruff", "hypothesis", "playwright", "tritonclient"):
        assert extra not in pins, f"{extra} is not a runtime dependency"
    assert "setuptools" not in pins, "the image's venv drops the setuptools it came with"


def _closure(requirements: list[Requirement]) -> set[str]:
    """Every distribution these requirements pull in, as installed in this environment."""
    environment = default_environment()
    seen: set[str] = set()
    pending = [(requirement, frozenset(requirement.extras)) for requirement in requirements]
    while pending:
        requirement, extras = pending.pop()
        name = canonicalize_name(requirement.name)
        if name in seen and not extras:
            continue
        seen.add(name)
        distribution = importlib.metadata.distribution(requirement.name)
        for line in distribution.requires or []:
            child = Requirement(line)
            applies = child.marker is None or any(
                child.marker.evaluate({**environment, "extra": extra}) for extra in {"", *extras}
            )
            if applies:
                pending.append((child, frozenset(child.extras)))
    return seen


def test_the_lock_holds_exactly_what_the_dependencies_pull_in() -> None:
    base = dockerfile.parse().final.base
    image_python = re.match(r"python:(\d+\.\d+)", base).group(1)
    here = f"{sys.version_info.major}.{sys.version_info.minor}"
    if (sys.platform, platform.machine(), here) != ("linux", "x86_64", image_python):
        pytest.skip(f"needs the image's platform, linux x86_64 Python {image_python}")
    expected = _closure(lock_requirements.image_requirements())
    pins = set(locked())
    assert not expected - pins, f"missing from the lock: {sorted(expected - pins)}; {REGENERATE}"
    assert not pins - expected, f"in the lock but not needed: {sorted(pins - expected)}"
