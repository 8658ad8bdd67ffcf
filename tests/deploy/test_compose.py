"""docker-compose.yml runs the image as the Dockerfile and the Kubernetes Deployment mean it."""

from __future__ import annotations

import re
import shutil
import subprocess
import tomllib

import pytest
import yaml

from tests.conftest import require
from tests.deploy import dockerfile
from tests.deploy.dockerfile import PROJECT_ROOT

COMPOSE = PROJECT_ROOT / "docker-compose.yml"


@pytest.fixture(scope="module")
def service() -> dict:
    (only,) = yaml.safe_load(COMPOSE.read_text())["services"].values()
    return only


def test_builds_this_dockerfile_and_runs_its_cmd(service: dict) -> None:
    assert service["build"]["context"] == "."
    assert "dockerfile" not in service["build"]
    assert "command" not in service and "entrypoint" not in service
    version = tomllib.loads((PROJECT_ROOT / "pyproject.toml").read_text())["project"]["version"]
    assert service["image"] == f"digits:{version}"
    assert service["build"]["args"]["VERSION"] == version


def test_publishes_the_images_port_on_loopback(service: dict) -> None:
    expose = dockerfile.parse().final.one("EXPOSE").value
    (mapping,) = service["ports"]
    host, _, container = mapping.rpartition(":")
    assert container == expose
    assert host.startswith("127.0.0.1:"), "a local run is not for the whole network"
    assert service["environment"]["WORKERS"] == "1"


def test_locked_down_like_the_deployment(service: dict) -> None:
    assert service["read_only"] is True
    assert any(entry.split(":")[0] == "/tmp" for entry in service["tmpfs"])
    assert service["cap_drop"] == ["ALL"]
    assert "no-new-privileges:true" in service["security_opt"]
    grace = int(re.fullmatch(r"(\d+)s", service["stop_grace_period"]).group(1))
    assert grace > 20, "uvicorn waits up to 20 s for requests in flight"
    # The memory figures: tests/deploy/limits.py reads them, test_k8s.py checks they
    # are the Deployment's, test_hostile_inputs.py holds the measured peak to them.


def compose_command() -> list[str] | None:
    """Docker's compose plugin, else the standalone docker-compose (Debian's package,
    which .ci/run installs: it checks a file without a Docker engine)."""
    docker = shutil.which("docker")
    if docker is not None:
        probe = subprocess.run([docker, "compose", "version"], capture_output=True, timeout=30)
        if probe.returncode == 0:
            return [docker, "compose"]
    standalone = shutil.which("docker-compose")
    return [standalone] if standalone else None


def test_docker_compose_accepts_it() -> None:
    command = compose_command()
    require(command, "neither `docker compose` nor docker-compose: apt-get install docker-compose")
    result = subprocess.run(
        [*command, "-f", str(COMPOSE), "config", "--quiet"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
