"""KServe manifests: every one validated against KServe's own CRD schema."""

from __future__ import annotations

from pathlib import Path

import jsonschema
import pytest
import yaml

from modeldeploy.operator.api.openapi import to_jsonschema
from modeldeploy.operator.api.status import VersionRef
from modeldeploy.operator.api.types import parse_spec
from modeldeploy.operator.platforms import kserve_manifests as m
from modeldeploy.operator.platforms.base import Target

STABLE, CANARY = VersionRef("1", "aa", "s3://b/1"), VersionRef("2", "bb", "s3://b/2")
GPU = {
    "gpu": 1,
    "nodeSelector": {"pool": "gpu"},
    "tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}],
}


def target(**spec: object) -> Target:
    raw = {"model": {"name": "sentiment", "registryUri": "http://mlflow:5000"}, **spec}
    return Target("sentiment", "ml", parse_spec(raw), uid="u-1")


@pytest.fixture(scope="module")
def isvc_validator(kserve_crds: Path) -> jsonschema.Draft7Validator:
    text = (kserve_crds / "serving.kserve.io_inferenceservices.yaml").read_text()
    crd = yaml.load(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    version = next(v for v in crd["spec"]["versions"] if v["name"] == "v1beta1")
    return jsonschema.Draft7Validator(to_jsonschema(version["schema"]["openAPIV3Schema"]))


CASES = {
    f"{mode}-{runtime}-{shape}-{gpu}": (
        target(deploymentMode=mode, runtime=runtime, resources=GPU if gpu == "gpu" else {}),
        shape,
    )
    for mode in ("Serverless", "RawDeployment")
    for runtime in ("kserve-python", "triton")
    for shape in ("stable", "canary", "pinned")
    for gpu in ("cpu", "gpu")
}


def build(t: Target, shape: str) -> dict:
    if shape == "stable":
        return m.inference_service(t, STABLE)
    return m.inference_service(t, STABLE, CANARY, 25 if shape == "canary" else 0)


@pytest.mark.parametrize("case", sorted(CASES))
def test_every_manifest_is_valid_against_the_kserve_crd(case: str, isvc_validator) -> None:
    t, shape = CASES[case]
    errors = [
        f"{list(e.absolute_path)}: {e.message}" for e in isvc_validator.iter_errors(build(t, shape))
    ]
    assert errors == []


def test_validator_catches_a_wrong_field(isvc_validator) -> None:
    body = m.inference_service(target(), STABLE)
    body["spec"]["predictor"]["canaryTrafficPercnt"] = 5
    assert list(isvc_validator.iter_errors(body))


def test_serverless_canary_uses_canary_traffic_percent() -> None:
    body = m.inference_service(target(), STABLE, CANARY, 25)
    pred = body["spec"]["predictor"]
    assert pred["canaryTrafficPercent"] == 25 and "canary" not in body["spec"]
    assert "2" in pred["containers"][0]["args"]


def test_raw_deployment_canary_uses_spec_canary() -> None:
    body = m.inference_service(target(deploymentMode="RawDeployment"), STABLE, CANARY, 25)
    assert "canaryTrafficPercent" not in body["spec"]["predictor"]
    assert body["spec"]["canary"][0]["trafficPercent"] == 25
    assert body["metadata"]["annotations"]["serving.kserve.io/deploymentMode"] == "RawDeployment"


@pytest.mark.parametrize("mode", ["Serverless", "RawDeployment"])
def test_rollback_pins_traffic_to_zero(mode: str) -> None:
    body = m.inference_service(target(deploymentMode=mode), STABLE, CANARY, 0)
    assert m.canary_traffic(body) == 0 or body["spec"]["predictor"]["canaryTrafficPercent"] == 0


def test_stable_only_has_no_canary() -> None:
    body = m.inference_service(target(), STABLE)
    assert "canaryTrafficPercent" not in body["spec"]["predictor"] and "canary" not in body["spec"]
    assert m.canary_traffic(body) is None


def test_tag_routing_is_enabled() -> None:
    ann = m.inference_service(target(), STABLE)["metadata"]["annotations"]
    assert ann["serving.kserve.io/enable-tag-routing"] == "true"


def test_gpu_placement() -> None:
    pred = m.inference_service(target(resources=GPU), STABLE)["spec"]["predictor"]
    assert pred["containers"][0]["resources"]["limits"]["nvidia.com/gpu"] == "1"
    assert pred["nodeSelector"] == {"pool": "gpu"}
    assert pred["tolerations"][0]["key"] == "nvidia.com/gpu"


def test_no_gpu_limit_without_gpus() -> None:
    pred = m.inference_service(target(), STABLE)["spec"]["predictor"]
    assert "nvidia.com/gpu" not in pred["containers"][0]["resources"]["limits"]


def test_triton_runtime_uses_the_model_format() -> None:
    pred = m.inference_service(target(runtime="triton", resources=GPU), STABLE)["spec"]["predictor"]
    assert pred["model"]["modelFormat"] == {"name": "triton"}
    assert pred["model"]["storageUri"] == "s3://b/1"
    assert pred["model"]["resources"]["limits"]["nvidia.com/gpu"] == "1"
    assert "containers" not in pred


def test_security_context_is_restrictive() -> None:
    pred = m.inference_service(target(), STABLE)["spec"]["predictor"]
    sc = pred["containers"][0]["securityContext"]
    assert sc["allowPrivilegeEscalation"] is False and sc["readOnlyRootFilesystem"] is True
    assert sc["capabilities"] == {"drop": ["ALL"]} and sc["runAsNonRoot"] is True
    assert pred["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}


def test_owner_reference_points_at_the_model_deployment() -> None:
    owner = m.inference_service(target(), STABLE)["metadata"]["ownerReferences"][0]
    assert owner["kind"] == "ModelDeployment" and owner["uid"] == "u-1"


def _with_status(body: dict, **status: object) -> dict:
    return {**body, "status": status}


def test_readiness_is_read_from_plain_status_dicts() -> None:
    body = m.inference_service(target(), STABLE, CANARY, 10)
    body["metadata"]["generation"] = 2
    ready = {"type": "Ready", "status": "True"}
    pred = {"latestCreatedRevision": "r2", "latestReadyRevision": "r2"}
    ok = _with_status(
        body, observedGeneration=2, conditions=[ready], components={"predictor": pred}
    )
    assert m.is_ready(ok)
    stale = _with_status(
        body, observedGeneration=1, conditions=[ready], components={"predictor": pred}
    )
    assert not m.is_ready(stale)
    rolling = {"latestCreatedRevision": "r3", "latestReadyRevision": "r2"}
    assert not m.is_ready(
        _with_status(
            body, observedGeneration=2, conditions=[ready], components={"predictor": rolling}
        )
    )
    assert not m.is_ready(None)


def test_serverless_traffic_is_read_from_status() -> None:
    body = m.inference_service(target(), STABLE, CANARY, 10)
    traffic = [
        {"revisionName": "r1", "percent": 90, "latestRevision": False, "tag": "prev"},
        {"revisionName": "r2", "percent": 10, "latestRevision": True, "tag": "latest"},
    ]
    assert (
        m.canary_traffic(_with_status(body, components={"predictor": {"traffic": traffic}})) == 10
    )
