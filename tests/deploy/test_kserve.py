"""deploy/kserve: the image as a KServe InferenceService with a custom predictor.

No KServe schema ships offline, so the InferenceService's own fields are checked
here, and its predictor, a pod spec with KServe's replica fields beside it, is
validated strictly against the Kubernetes schemas as a Pod. It must set the pod up
as deploy/k8s/deployment.yaml does and probe paths the service answers.
"""

from __future__ import annotations

import copy

import kubernetes_validate
import pytest
import yaml
from kubernetes_validate.utils import latest_version

from app.config import Settings
from app.main import create_app
from tests.deploy import test_k8s
from tests.deploy.dockerfile import PROJECT_ROOT

MANIFEST = PROJECT_ROOT / "deploy" / "kserve" / "inferenceservice.yaml"
# PredictorSpec's own fields; the rest of it is a PodSpec.
KSERVE_FIELDS = ("minReplicas", "maxReplicas", "scaleTarget", "scaleMetric", "containerConcurrency")


@pytest.fixture(scope="module")
def service() -> dict:
    return yaml.safe_load(MANIFEST.read_text())


@pytest.fixture(scope="module")
def predictor(service: dict) -> dict:
    return service["spec"]["predictor"]


def as_pod(predictor: dict) -> dict:
    spec = {k: v for k, v in predictor.items() if k not in KSERVE_FIELDS}
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "predictor"}, "spec": spec}


def test_an_inference_service_with_a_custom_predictor(service: dict, predictor: dict) -> None:
    assert service["apiVersion"] == "serving.kserve.io/v1beta1"
    assert service["kind"] == "InferenceService"
    assert set(service) == {"apiVersion", "kind", "metadata", "spec"}
    assert set(service["spec"]) == {"predictor"}
    (container,) = predictor["containers"]
    assert container["name"] == "kserve-container"
    assert 1 <= predictor["minReplicas"] <= predictor["maxReplicas"]


@pytest.mark.parametrize("version", test_k8s.KUBERNETES_VERSIONS)
def test_the_predictor_is_a_valid_pod_spec(predictor: dict, version: str) -> None:
    kubernetes_validate.validate(as_pod(predictor), version, strict=True)


def test_strict_validation_rejects_an_unknown_field(predictor: dict) -> None:
    broken = copy.deepcopy(predictor)
    broken["containers"][0]["readinessprobe"] = {}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(as_pod(broken), latest_version(), strict=True)


def test_the_pod_is_set_up_as_the_deployment_sets_it_up(predictor: dict) -> None:
    (container,) = predictor["containers"]
    deployment = test_k8s.by_kind("Deployment")
    pod = deployment["spec"]["template"]["spec"]
    (reference,) = pod["containers"]
    for field in ("securityContext", "terminationGracePeriodSeconds"):
        assert predictor[field] == pod[field], field
    for field in ("image", "resources", "securityContext", "lifecycle", "volumeMounts"):
        assert container[field] == reference[field], field
    assert predictor["volumes"] == pod["volumes"]
    ports = [port["containerPort"] for port in container["ports"]]
    assert ports == [port["containerPort"] for port in reference["ports"]]
    env = {item["name"]: item["value"] for item in container["env"]}
    assert env["PORT"] == str(ports[0]) and env["WORKERS"] == "1"


def test_the_probes_ask_the_protocols_health_paths(predictor: dict) -> None:
    (container,) = predictor["containers"]
    paths = set(create_app(Settings()).openapi()["paths"])
    name = Settings().model_path.stem  # the shipped model's card names it so too
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        path = container[probe]["httpGet"]["path"]
        assert path.startswith("/v2/")
        assert path.replace(f"/models/{name}/", "/models/{model_name}/") in paths, path
        assert container[probe]["httpGet"]["port"] == container["ports"][0]["containerPort"]
