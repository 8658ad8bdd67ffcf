"""The container's memory, as deploy/k8s and docker-compose.yml grant it: one figure
for every test that checks memory against the deployment."""

from __future__ import annotations

import re

import yaml

from tests.deploy.dockerfile import PROJECT_ROOT

DEPLOYMENT = PROJECT_ROOT / "deploy" / "k8s" / "deployment.yaml"
COMPOSE = PROJECT_ROOT / "docker-compose.yml"
# The worst case must leave this share of the limit unused: allocator slack, a
# model a little larger, a page cache the kernel charges to the container.
HEADROOM = 0.2
KUBERNETES_UNITS = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "K": 10**3, "M": 10**6, "G": 10**9}
DOCKER_UNITS = {"b": 1, "k": 2**10, "m": 2**20, "g": 2**30}  # Docker's are binary


def kubernetes_bytes(quantity: str) -> int:
    number, unit = re.fullmatch(r"(\d+)([KMG]i?)?", str(quantity)).groups()
    return int(number) * KUBERNETES_UNITS.get(unit or "", 1)


def docker_bytes(quantity: str) -> int:
    number, unit = re.fullmatch(r"(\d+)([bkmg])?b?", str(quantity).lower()).groups()
    return int(number) * DOCKER_UNITS[unit or "b"]


def kubernetes_memory() -> dict[str, int]:
    """The container's memory request and limit in the Deployment, in bytes."""
    (deployment,) = [
        document
        for document in yaml.safe_load_all(DEPLOYMENT.read_text())
        if document and document["kind"] == "Deployment"
    ]
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    resources = container["resources"]
    return {
        "request": kubernetes_bytes(resources["requests"]["memory"]),
        "limit": kubernetes_bytes(resources["limits"]["memory"]),
    }


def compose_memory() -> dict[str, int]:
    """The service's memory reservation and limit in docker-compose.yml, in bytes."""
    (service,) = yaml.safe_load(COMPOSE.read_text())["services"].values()
    resources = service["deploy"]["resources"]
    return {
        "request": docker_bytes(resources["reservations"]["memory"]),
        "limit": docker_bytes(resources["limits"]["memory"]),
    }


def container_memory_limit() -> int:
    """The least memory any deployment gives the one worker, in bytes."""
    return min(kubernetes_memory()["limit"], compose_memory()["limit"])


def peak_rss_allowed() -> int:
    """The most a worker's peak RSS may reach in a test: the limit less the headroom."""
    return int(container_memory_limit() * (1 - HEADROOM))


def idle_rss_allowed() -> int:
    """The most a worker may hold at rest: what every deployment reserves for it."""
    return min(kubernetes_memory()["request"], compose_memory()["request"])
