"""KServe manifests: every shape validated against KServe's CRD schema and admission rules."""

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
from modeldeploy.operator.settings import KServeSettings
from tests.support import admission as adm

TRITON_BASE = "s3://models/triton"  # where published Triton repositories live

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


KNATIVE_DEFAULTS = KServeSettings(triton_base_uri=TRITON_BASE)
KNATIVE_ON = KServeSettings(
    triton_base_uri=TRITON_BASE,
    knative_security_context=True,
    knative_node_selector=True,
    knative_tolerations=True,
)
FEATURES = {"features-off": (KNATIVE_DEFAULTS, adm.DEFAULT_FEATURES)}
FEATURES["features-on"] = (KNATIVE_ON, adm.PLACEMENT_FEATURES)
SHAPES = ("stable", "canary", "pinned")
CASES = {
    f"{mode}-{runtime}-{placement}-{shape}-{features}": (
        target(deploymentMode=mode, runtime=runtime, resources=GPU if placement == "gpu" else {}),
        shape,
        features,
    )
    for mode in ("Serverless", "RawDeployment")
    for runtime in ("kserve-python", "triton")
    for placement in ("cpu", "gpu")
    for shape in SHAPES
    for features in FEATURES
}
REFUSED = {  # Serverless GPU placement with Knative's features declared off
    name for name in CASES if name.startswith("Serverless") and "-gpu-" in name and "-off" in name
}


def build(t: Target, shape: str, cfg: KServeSettings = KNATIVE_DEFAULTS) -> dict:
    if shape == "stable":
        return m.inference_service(t, STABLE, cfg=cfg)
    return m.inference_service(t, STABLE, CANARY, 25 if shape == "canary" else 0, cfg=cfg)


@pytest.mark.parametrize("case", sorted(set(CASES) - REFUSED))
def test_every_manifest_passes_the_crd_schema_and_the_admission_webhooks(
    case: str, isvc_validator
) -> None:
    t, shape, features = CASES[case]
    cfg, knative = FEATURES[features]
    body = build(t, shape, cfg)
    errors = [f"{list(e.absolute_path)}: {e.message}" for e in isvc_validator.iter_errors(body)]
    assert errors == []
    assert adm.admit(body, knative) == []
    # As an update of what the cluster stores (status in KServe's normalised mode name).
    stored = {**build(t, "stable", cfg), "status": {"deploymentMode": t.spec.deployment_mode}}
    assert adm.admit(body, knative, old=stored) == []


@pytest.mark.parametrize("case", sorted(REFUSED))
def test_serverless_gpu_placement_without_the_knative_features_is_refused_clearly(
    case: str,
) -> None:
    t, shape, _ = CASES[case]
    with pytest.raises(m.ManifestError) as err:
        build(t, shape, KNATIVE_DEFAULTS)
    assert "kubernetes.podspec-nodeselector" in str(err.value)
    assert "knative.features.podspecNodeSelector" in str(err.value)


def test_the_refusal_names_the_tolerations_feature_when_only_it_is_missing() -> None:
    cfg = KServeSettings(triton_base_uri=TRITON_BASE, knative_node_selector=True)
    with pytest.raises(m.ManifestError, match=r"kubernetes\.podspec-tolerations"):
        m.inference_service(target(resources=GPU), STABLE, cfg=cfg)


def test_what_the_operator_would_have_written_before_is_refused() -> None:
    """The admission rules catch the shapes that a real cluster refused (so the matrix above
    is a real check): pod securityContext and placement on stock Knative, an unnamed
    RawDeployment canary with maxReplicas beside a stable without storage, Triton's name."""
    t = target(resources=GPU)
    body = m.inference_service(t, STABLE, cfg=KNATIVE_ON)
    assert adm.admit(body, adm.DEFAULT_FEATURES)
    raw = m.inference_service(target(deploymentMode="RawDeployment"), STABLE, CANARY, 25)
    raw["spec"]["canary"][0]["predictor"]["maxReplicas"] = 2
    assert any("must not set maxReplicas" in e for e in adm.admit(raw))
    raw["spec"]["canary"][0]["predictor"].pop("name")
    assert any("predictor.name is required" in e for e in adm.admit(raw))
    raw["metadata"]["annotations"]["serving.kserve.io/deploymentMode"] = "RawDeployment"
    assert any("only supported in Standard" in e for e in adm.admit(raw))
    triton = m.inference_service(target(runtime="triton"), STABLE, cfg=KNATIVE_DEFAULTS)
    triton["spec"]["predictor"]["model"]["name"] = "kserve-container"
    assert adm.admit(triton)


def test_raw_deployment_canary_needs_a_fetchable_stable_uri() -> None:
    t = target(deploymentMode="RawDeployment")
    local = VersionRef("1", "aa", "mlflow-artifacts:/1/abc/artifacts/model")
    body = m.inference_service(t, local)  # stable alone is fine: no storage initializer
    assert "STORAGE_URI" not in str(body) and adm.admit(body) == []
    with pytest.raises(m.ManifestError, match="storage URI"):
        m.inference_service(t, local, CANARY, 10)


def test_registry_credentials_reach_the_predictor_by_reference() -> None:
    cfg = KServeSettings(
        triton_base_uri=TRITON_BASE, credentials_secret="mlflow-creds", service_account="predictor"
    )
    for runtime in ("kserve-python", "triton"):
        for mode in ("Serverless", "RawDeployment"):
            body = m.inference_service(
                target(runtime=runtime, deploymentMode=mode), STABLE, CANARY, 10, cfg=cfg
            )
            preds = [body["spec"]["predictor"]]
            preds += [c["predictor"] for c in body["spec"].get("canary", [])]
            for pred in preds:
                c = pred["model"] if runtime == "triton" else pred["containers"][0]
                assert c["envFrom"] == [{"secretRef": {"name": "mlflow-creds"}}]
                assert pred["serviceAccountName"] == "predictor"
                values = [e.get("value", "") for e in c.get("env", [])]
                assert not any("mlflow-creds" in v for v in values)
            assert adm.admit(body) == []


def test_default_images_come_from_the_settings() -> None:
    cfg = KServeSettings(
        triton_base_uri=TRITON_BASE,
        predictor_image="r/p:1",
        predictor_gpu_image="r/p-cuda:1",
        triton_image="r/t:1",
    )
    py = m.inference_service(target(), STABLE, cfg=cfg)["spec"]["predictor"]
    assert py["containers"][0]["image"] == "r/p:1"
    gpu_t = target(deploymentMode="RawDeployment", resources=GPU)
    gpu = m.inference_service(gpu_t, STABLE, cfg=cfg)["spec"]["predictor"]
    assert gpu["containers"][0]["image"] == "r/p-cuda:1"
    tr = m.inference_service(target(runtime="triton"), STABLE, cfg=cfg)["spec"]["predictor"]
    assert tr["model"]["image"] == "r/t:1"
    own = m.inference_service(target(image="mine:2"), STABLE, cfg=cfg)["spec"]["predictor"]
    assert own["containers"][0]["image"] == "mine:2"


def test_serverless_without_the_feature_keeps_hardening_on_the_container() -> None:
    pred = m.inference_service(target(), STABLE)["spec"]["predictor"]
    assert "securityContext" not in pred
    sc = pred["containers"][0]["securityContext"]
    assert sc["runAsNonRoot"] is True and sc["seccompProfile"] == {"type": "RuntimeDefault"}
    on = m.inference_service(target(), STABLE, cfg=KNATIVE_ON)["spec"]["predictor"]
    assert on["securityContext"]["fsGroup"] == m.POD_SECURITY["fsGroup"]


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
    assert body["metadata"]["annotations"]["serving.kserve.io/deploymentMode"] == "Standard"
    assert body["spec"]["canary"][0]["predictor"]["name"] == "canary-v2"
    assert "maxReplicas" not in body["spec"]["canary"][0]["predictor"]


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
    pred = m.inference_service(target(resources=GPU), STABLE, cfg=KNATIVE_ON)["spec"]["predictor"]
    assert pred["containers"][0]["resources"]["limits"]["nvidia.com/gpu"] == "1"
    assert pred["nodeSelector"] == {"pool": "gpu"}
    assert pred["tolerations"][0]["key"] == "nvidia.com/gpu"


def test_no_gpu_limit_without_gpus() -> None:
    pred = m.inference_service(target(), STABLE)["spec"]["predictor"]
    assert "nvidia.com/gpu" not in pred["containers"][0]["resources"]["limits"]


def test_triton_loads_the_published_repository_and_labels_its_metrics() -> None:
    pred = m.inference_service(
        target(runtime="triton", deploymentMode="RawDeployment"), STABLE, cfg=KNATIVE_DEFAULTS
    )["spec"]["predictor"]
    model = pred["model"]
    assert (
        model["storageUri"] == f"{TRITON_BASE}/{target().spec.model.name}/{STABLE.version}/triton"
    )
    env = {e["name"]: e["value"] for e in model["env"]}
    assert env["MODELDEPLOY_ROLE"] == "stable" and env["MODELDEPLOY_DEPLOYMENT"]
    assert env["MODELDEPLOY_RESPONSE_DETAIL"] == "label"  # the spec's client view (default)
    full = target(runtime="triton", serving={"responseDetail": "full"})
    model = m.inference_service(full, STABLE, cfg=KNATIVE_DEFAULTS)["spec"]["predictor"]["model"]
    assert {"name": "MODELDEPLOY_RESPONSE_DETAIL", "value": "full"} in model["env"]
    assert any(a.startswith("--metrics-config=summary_latencies") for a in model["args"])


def test_triton_without_a_published_repository_location_is_refused_clearly() -> None:
    with pytest.raises(m.ManifestError, match=r"predictor\.tritonBaseUri"):
        m.inference_service(target(runtime="triton"), STABLE, cfg=KServeSettings())


def test_triton_runtime_uses_the_model_format() -> None:
    t = target(runtime="triton", deploymentMode="RawDeployment", resources=GPU)
    pred = m.inference_service(t, STABLE, cfg=KNATIVE_DEFAULTS)["spec"]["predictor"]
    assert pred["model"]["modelFormat"] == {"name": "triton"}
    assert pred["model"]["storageUri"] == f"{TRITON_BASE}/sentiment/1/triton"
    assert pred["model"]["resources"]["limits"]["nvidia.com/gpu"] == "1"
    assert "containers" not in pred and "name" not in pred["model"]


def test_security_context_is_restrictive() -> None:
    pred = m.inference_service(target(), STABLE, cfg=KNATIVE_ON)["spec"]["predictor"]
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
