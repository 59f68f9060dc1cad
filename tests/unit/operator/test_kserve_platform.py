"""KServePlatform: rewrites an InferenceService only when something the operator owns changed,
and refuses (without writing) a spec the cluster would reject."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from modeldeploy.operator.api.status import VersionRef
from modeldeploy.operator.api.types import parse_spec
from modeldeploy.operator.platforms import kserve_manifests as m
from modeldeploy.operator.platforms.base import PlatformError, Target
from modeldeploy.operator.platforms.kserve import KServePlatform, same_isvc
from modeldeploy.operator.settings import KServeSettings

TRITON_BASE = "s3://models/triton"  # where published Triton repositories live

STABLE, CANARY = VersionRef("1", "aa", "s3://b/1"), VersionRef("2", "bb", "s3://b/2")
GPU = {
    "gpu": 1,
    "cpu": "1000m",
    "memory": "1Gi",
    "nodeSelector": {"pool": "gpu"},
    "tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}],
}


def target(**spec: object) -> Target:
    raw = {"model": {"name": "sentiment", "registryUri": "http://mlflow:5000"}, **spec}
    return Target("sentiment", "ml", parse_spec(raw), uid="u-1")


def as_kserve_returns_it(body: dict[str, Any]) -> dict[str, Any]:
    """``body`` after KServe's defaulting webhook and the API server, as a GET returns it."""
    out = copy.deepcopy(body)
    meta = out["metadata"]
    meta.update(
        resourceVersion="812",
        generation=3,
        uid="isvc-uid",
        creationTimestamp="2025-01-01T00:00:00Z",
        finalizers=["inferenceservice.finalizers"],
        managedFields=[{"manager": "modeldeploy"}],
    )
    ann = meta["annotations"]
    ann[m.DEPLOYMENT_MODE] = {"Knative": "Serverless", "Standard": "RawDeployment"}[
        ann[m.DEPLOYMENT_MODE]
    ]  # an older release keeps the legacy names: either way round must compare equal
    ann["serving.kserve.io/autoscalerClass"] = "hpa"
    meta["labels"]["serving.kserve.io/inferenceservice"] = body["metadata"]["name"]
    preds = [out["spec"]["predictor"]] + [c["predictor"] for c in out["spec"].get("canary", [])]
    for pred in preds:
        pred.setdefault("minReplicas", 1)
        for c in pred.get("containers", []):
            c["imagePullPolicy"] = "IfNotPresent"
            c["terminationMessagePath"] = "/dev/termination-log"
            c["resources"]["requests"]["cpu"] = "1"  # "1000m" re-serialised
        if "model" in pred:
            pred["model"]["runtime"] = "kserve-tritonserver"
    out["status"] = {"deploymentMode": "Knative", "observedGeneration": 3}
    return out


@pytest.mark.parametrize("mode", ["Serverless", "RawDeployment"])
@pytest.mark.parametrize("runtime", ["kserve-python", "triton"])
def test_an_isvc_as_kserve_returns_it_is_the_same(mode: str, runtime: str) -> None:
    cfg = KServeSettings(
        triton_base_uri=TRITON_BASE, knative_node_selector=True, knative_tolerations=True
    )
    t = target(deploymentMode=mode, runtime=runtime, resources=GPU)
    wanted = m.inference_service(t, STABLE, CANARY, 25, cfg=cfg)
    stored = as_kserve_returns_it(wanted)
    assert stored != wanted
    assert same_isvc(stored, wanted)


@pytest.mark.parametrize(
    ("change", "why"),
    [
        (lambda s: _weight(s, 50), "weight"),
        (lambda s: s["metadata"]["annotations"].update({m.DEPLOYMENT_MODE: "Standard"}), "mode"),
        (lambda s: s["metadata"]["annotations"].pop("modeldeploy.io/canary-version"), "ann"),
        (lambda s: _container(s).update(image="other:1"), "image"),
        (lambda s: _container(s)["resources"]["limits"].update(memory="3Gi"), "memory"),
        (lambda s: _container(s).update(envFrom=[{"secretRef": {"name": "x"}}]), "envFrom"),
        (lambda s: s["spec"]["predictor"].update(nodeSelector={"a": "b"}), "placement"),
        (lambda s: _container(s)["env"].append({"name": "X", "value": "1"}), "env"),
    ],
    ids=lambda v: v if isinstance(v, str) else "",
)
def test_a_change_the_operator_owns_is_not_the_same(change: Any, why: str) -> None:
    wanted = m.inference_service(target(), STABLE, CANARY, 25)
    stored = as_kserve_returns_it(wanted)
    change(stored)
    assert not same_isvc(stored, wanted), why


def _weight(isvc: dict[str, Any], weight: int) -> None:
    isvc["spec"]["predictor"]["canaryTrafficPercent"] = weight


def _container(isvc: dict[str, Any]) -> dict[str, Any]:
    return isvc["spec"]["predictor"]["containers"][0]


def test_a_leftover_canary_is_not_the_same_as_stable_only() -> None:
    t = target()
    stored = as_kserve_returns_it(m.inference_service(t, STABLE, CANARY, 0))
    assert not same_isvc(stored, m.inference_service(t, STABLE))


class FakeApi:
    """Just enough of CustomObjectsApi: one stored object, and a log of writes."""

    def __init__(self) -> None:
        self.stored: dict[str, Any] | None = None
        self.writes: list[str] = []

    def get_namespaced_custom_object(self, *args: Any) -> dict[str, Any]:
        from kubernetes.client.exceptions import ApiException

        if self.stored is None:
            raise ApiException(status=404, reason="Not Found")
        return copy.deepcopy(self.stored)

    def create_namespaced_custom_object(self, group, version, ns, plural, body) -> None:
        self.writes.append("create")
        self.stored = as_kserve_returns_it(body)

    def replace_namespaced_custom_object(self, group, version, ns, plural, name, body) -> None:
        self.writes.append("replace")
        self.stored = as_kserve_returns_it(body)


def test_the_platform_writes_once_per_change_not_once_per_tick() -> None:
    api = FakeApi()
    platform = KServePlatform(api, KServeSettings(triton_base_uri=TRITON_BASE))
    t = target()
    for _ in range(3):
        platform.set_canary(t, STABLE, CANARY, 10)
    assert api.writes == ["create"]
    platform.set_traffic(t, STABLE, CANARY, 20)
    platform.set_traffic(t, STABLE, CANARY, 20)
    assert api.writes == ["create", "replace"]
    assert api.stored is not None
    assert api.stored["spec"]["predictor"]["canaryTrafficPercent"] == 20


def test_a_spec_the_cluster_would_refuse_is_a_permanent_error_and_writes_nothing() -> None:
    api = FakeApi()
    platform = KServePlatform(api, KServeSettings(triton_base_uri=TRITON_BASE))
    with pytest.raises(PlatformError) as err:
        platform.ensure(target(resources=GPU), STABLE)
    assert err.value.transient is False
    assert "kubernetes.podspec-nodeselector" in str(err.value)
    assert api.writes == []


def test_settings_default_to_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MODELDEPLOY_PREDICTOR_CREDENTIALS_SECRET", "mlflow-creds")
    monkeypatch.setenv("MODELDEPLOY_KNATIVE_PODSPEC_NODESELECTOR", "true")
    platform = KServePlatform(FakeApi())
    assert platform.settings.credentials_secret == "mlflow-creds"
    assert platform.settings.knative_node_selector is True
    assert platform.settings.knative_tolerations is False


def test_a_bad_flag_value_is_refused_clearly() -> None:
    with pytest.raises(ValueError, match="MODELDEPLOY_KNATIVE_PODSPEC_TOLERATIONS"):
        KServeSettings.from_env({"MODELDEPLOY_KNATIVE_PODSPEC_TOLERATIONS": "maybe"})
