"""deploy/k8s: valid against the Kubernetes schemas (offline, strict) and consistent.

Consistent with each other (selectors, names, ports), with the Dockerfile (port,
user) and with the service (probe paths, shutdown timing). The memory figures are
read by tests/deploy/limits.py, against which the service's measured peak is held
(tests/app/test_hostile_inputs.py).
"""

from __future__ import annotations

import copy
import re
import tomllib
from pathlib import Path

import kubernetes_validate
import pytest
import yaml
from kubernetes_validate.utils import latest_version

from tests.deploy import dockerfile, limits
from tests.deploy.dockerfile import PROJECT_ROOT

K8S = PROJECT_ROOT / "deploy" / "k8s"
# The newest schemas kubernetes-validate ships, and the oldest release still common.
KUBERNETES_VERSIONS = (latest_version(), "1.30.0")


def manifest_files() -> list[Path]:
    return sorted(path for path in K8S.glob("*.yaml") if path.name != "kustomization.yaml")


def resources() -> list[dict]:
    return [
        document
        for path in manifest_files()
        for document in yaml.safe_load_all(path.read_text())
        if document
    ]


def by_kind(kind: str) -> dict:
    (found,) = [resource for resource in resources() if resource["kind"] == kind]
    return found


@pytest.fixture(scope="module")
def deployment() -> dict:
    return by_kind("Deployment")


@pytest.fixture(scope="module")
def container(deployment: dict) -> dict:
    (only,) = deployment["spec"]["template"]["spec"]["containers"]
    return only


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
@pytest.mark.parametrize("path", manifest_files(), ids=lambda path: path.name)
def test_manifest_is_valid_strictly(path: Path, version: str) -> None:
    documents = [d for d in yaml.safe_load_all(path.read_text()) if d]
    assert documents, f"{path.name} is empty"
    for document in documents:
        kubernetes_validate.validate(document, version, strict=True)


def test_strict_validation_rejects_an_unknown_field(deployment: dict) -> None:
    broken = copy.deepcopy(deployment)
    broken["spec"]["template"]["spec"]["containers"][0]["readinessprobe"] = {}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, latest_version(), strict=True)


def test_kustomization_lists_every_manifest() -> None:
    kustomization = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    assert sorted(kustomization["resources"]) == [path.name for path in manifest_files()]
    (image,) = kustomization["images"]
    assert image["name"] == "digits"


def test_the_required_kinds_are_there() -> None:
    kinds = sorted(resource["kind"] for resource in resources())
    assert kinds == ["Deployment", "HorizontalPodAutoscaler", "PodDisruptionBudget", "Service"]


def test_selectors_and_references_agree(deployment: dict) -> None:
    pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
    selector = deployment["spec"]["selector"]["matchLabels"]
    assert selector.items() <= pod_labels.items()
    assert by_kind("Service")["spec"]["selector"] == selector
    assert by_kind("PodDisruptionBudget")["spec"]["selector"]["matchLabels"] == selector
    target = by_kind("HorizontalPodAutoscaler")["spec"]["scaleTargetRef"]
    assert (target["kind"], target["name"]) == ("Deployment", deployment["metadata"]["name"])


def test_replicas_and_autoscaling(deployment: dict) -> None:
    hpa = by_kind("HorizontalPodAutoscaler")["spec"]
    assert deployment["spec"]["replicas"] >= 2
    assert hpa["minReplicas"] >= 2 and hpa["maxReplicas"] > hpa["minReplicas"]
    (metric,) = hpa["metrics"]
    assert metric["resource"]["name"] == "cpu"
    pdb = by_kind("PodDisruptionBudget")["spec"]
    # A drain can always evict a pod, and never the last one.
    budget = pdb.get("maxUnavailable", pdb.get("minAvailable"))
    assert isinstance(budget, int) and 1 <= budget < hpa["minReplicas"]


def test_one_worker_per_pod_on_the_images_port(deployment: dict, container: dict) -> None:
    env = {item["name"]: item["value"] for item in container.get("env", [])}
    image_env = dockerfile.parse().final.env()
    assert env.get("WORKERS", image_env["WORKERS"]) == "1"
    port = int(env.get("PORT", image_env["PORT"]))
    (declared,) = container["ports"]
    assert declared["containerPort"] == port == int(dockerfile.parse().final.one("EXPOSE").value)
    service_port = by_kind("Service")["spec"]["ports"][0]
    assert service_port["targetPort"] in (declared["name"], port)


def test_probes(container: dict) -> None:
    assert container["readinessProbe"]["httpGet"]["path"] == "/health/ready"
    assert container["livenessProbe"]["httpGet"]["path"] == "/health/live"
    startup = container["startupProbe"]
    assert startup["httpGet"]["path"] == "/health/ready"
    # Time for a start that has to convert the model (~14 s measured) on a slower node.
    assert startup["periodSeconds"] * startup["failureThreshold"] >= 30


def test_locked_down(deployment: dict, container: dict) -> None:
    pod = deployment["spec"]["template"]["spec"]
    user = dockerfile.parse().final.one("USER").value.split(":")
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] == int(user[0])
    assert pod["securityContext"]["seccompProfile"]["type"] == "RuntimeDefault"
    security = container["securityContext"]
    assert security["readOnlyRootFilesystem"] is True
    assert security["allowPrivilegeEscalation"] is False
    assert security["capabilities"]["drop"] == ["ALL"]
    assert pod["automountServiceAccountToken"] is False
    # A read-only root still needs a writable /tmp for spooled uploads.
    mounts = {mount["mountPath"]: mount["name"] for mount in container["volumeMounts"]}
    volumes = {volume["name"]: volume for volume in pod["volumes"]}
    assert "emptyDir" in volumes[mounts["/tmp"]]


def test_resources(container: dict) -> None:
    """The memory figures are read (limits.py) and held against the measured idle
    and worst-case RSS (test_hostile_inputs.py); here they need only be coherent."""
    requests, limits_ = container["resources"]["requests"], container["resources"]["limits"]
    memory = limits.kubernetes_memory()
    assert memory["request"] == limits.kubernetes_bytes(requests["memory"])
    assert 0 < memory["request"] <= memory["limit"] == limits.kubernetes_bytes(limits_["memory"])
    assert float(requests["cpu"]) >= 0.5, "one worker uses ~0.9 core at saturation"
    assert float(limits_["cpu"]) >= float(requests["cpu"])


def test_the_memory_figures_agree_with_compose() -> None:
    assert limits.kubernetes_memory() == limits.compose_memory()


def test_grace_period_outlasts_the_graceful_shutdown(deployment: dict, container: dict) -> None:
    source = (PROJECT_ROOT / "app" / "__main__.py").read_text()
    graceful = int(re.search(r"timeout_graceful_shutdown=(\d+)", source).group(1))
    pre_stop = container["lifecycle"]["preStop"]["exec"]["command"]
    assert pre_stop[0] == "sleep"
    grace = deployment["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
    assert grace > int(pre_stop[1]) + graceful


def test_image_tag_is_the_project_version(container: dict) -> None:
    version = tomllib.loads((PROJECT_ROOT / "pyproject.toml").read_text())["project"]["version"]
    assert container["image"] == f"digits:{version}"
    kustomization = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    assert kustomization["images"][0]["newTag"] == version
