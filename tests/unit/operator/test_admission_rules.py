"""The encoded KServe/Knative admission rules themselves: each refuses what upstream refuses.

These run the rules on hand-made bad objects (so a rule that can never fail would show up
here), and on one good object to show they do not refuse everything.
"""

from __future__ import annotations

import copy
from dataclasses import replace
from typing import Any

import pytest

from tests.support import admission as adm


def good_raw() -> dict[str, Any]:
    """A RawDeployment canary KServe admits: named canary, stable with a storage URI."""
    container = {
        "name": "kserve-container",
        "image": "img:1",
        "env": [{"name": "STORAGE_URI", "value": "s3://b/1"}],
        "ports": [{"containerPort": 8080, "protocol": "TCP"}],
    }
    canary = copy.deepcopy(container)
    canary["env"][0]["value"] = "s3://b/2"
    return {
        "metadata": {
            "name": "sentiment",
            "annotations": {"serving.kserve.io/deploymentMode": "Standard"},
        },
        "spec": {
            "predictor": {"minReplicas": 1, "maxReplicas": 2, "containers": [container]},
            "canary": [
                {"predictor": {"name": "canary-v2", "containers": [canary]}, "trafficPercent": 10}
            ],
        },
    }


def good_knative() -> dict[str, Any]:
    return {
        "metadata": {
            "name": "sentiment",
            "annotations": {"serving.kserve.io/deploymentMode": "Knative"},
        },
        "spec": {
            "predictor": {
                "minReplicas": 1,
                "volumes": [{"name": "scratch", "emptyDir": {}}],
                "containers": [
                    {
                        "name": "kserve-container",
                        "image": "img:1",
                        "ports": [{"containerPort": 8080, "protocol": "TCP"}],
                        "securityContext": {
                            "runAsNonRoot": True,
                            "capabilities": {"drop": ["ALL"]},
                        },
                        "volumeMounts": [{"name": "scratch", "mountPath": "/tmp"}],
                    }
                ],
            }
        },
    }


def test_good_objects_are_admitted() -> None:
    assert adm.admit(good_raw()) == []
    assert adm.admit(good_knative()) == []


def _raw_canary(body: dict[str, Any]) -> dict[str, Any]:
    return body["spec"]["canary"][0]["predictor"]


@pytest.mark.parametrize(
    ("break_it", "message"),
    [
        (lambda b: _raw_canary(b).pop("name"), "predictor.name is required"),
        (lambda b: _raw_canary(b).update(maxReplicas=3), "must not set maxReplicas"),
        (lambda b: _raw_canary(b).update(scaleTarget=5), "must not set scaleTarget"),
        (lambda b: _raw_canary(b).update(minReplicas=4), "minReplicas must not exceed"),
        (
            lambda b: b["spec"]["predictor"]["containers"][0].pop("env"),
            "stable predictor with a model",
        ),
        (
            lambda b: b["metadata"]["annotations"].update(
                {"serving.kserve.io/deploymentMode": "RawDeployment"}
            ),
            "only supported in Standard",
        ),
        (lambda b: b["spec"]["canary"][0].update(trafficPercent=101), "between 0 and 100"),
        (lambda b: b["spec"]["canary"].append(copy.deepcopy(b["spec"]["canary"][0])), "duplicated"),
        (lambda b: b["spec"]["predictor"].update(name="canary-v2"), "conflicts with the stable"),
        (
            lambda b: _raw_canary(b).update(model={"modelFormat": {"name": "triton"}}),
            "exactly one implementation",
        ),
        (lambda b: b["metadata"].update(name="Sentiment.v1"), "does not match"),
    ],
    ids=[
        "canary-unnamed",
        "canary-maxReplicas",
        "canary-scaleTarget",
        "canary-minReplicas-above-stable",
        "stable-without-storage",
        "legacy-mode-name",
        "traffic-range",
        "duplicate-canary",
        "canary-name-equals-stable",
        "two-implementations",
        "bad-name",
    ],
)
def test_kserve_refuses(break_it: Any, message: str) -> None:
    body = good_raw()
    break_it(body)
    errors = adm.admit(body)
    assert any(message in e for e in errors), errors


def test_triton_model_name_is_refused() -> None:
    body = good_knative()
    pred = body["spec"]["predictor"]
    pred.pop("containers")
    pred["model"] = {"name": "kserve-container", "modelFormat": {"name": "triton"}}
    assert any("'name' field is not allowed" in e for e in adm.admit(body))


def test_deployment_mode_update_compares_with_the_normalised_status() -> None:
    body = good_knative()
    assert adm.deployment_mode_update(body, "Serverless") == []  # status folded to Knative
    body["metadata"]["annotations"]["serving.kserve.io/deploymentMode"] = "Serverless"
    assert adm.deployment_mode_update(body, "Knative")
    assert adm.deployment_mode_update(body, "") == []  # first reconcile: nothing to protect


def test_predictor_name_change_needs_a_new_model() -> None:
    old, new = good_raw(), good_raw()
    new["spec"]["predictor"]["name"] = "v2"
    assert adm.predictor_name_change(new, old)
    new["spec"]["predictor"]["containers"][0]["env"][0]["value"] = "s3://b/9"
    assert adm.predictor_name_change(new, old) == []


@pytest.mark.parametrize(
    ("field", "value", "feature"),
    [
        ("securityContext", {"runAsNonRoot": True}, "podspec_securitycontext"),
        ("nodeSelector", {"pool": "gpu"}, "podspec_nodeselector"),
        ("tolerations", [{"key": "nvidia.com/gpu", "operator": "Exists"}], "podspec_tolerations"),
        ("affinity", {"nodeAffinity": {}}, "podspec_affinity"),
    ],
)
def test_knative_gates_pod_fields_behind_their_feature(
    field: str, value: Any, feature: str
) -> None:
    body = good_knative()
    body["spec"]["predictor"][field] = value
    assert any(field in e for e in adm.admit(body)), "refused with the defaults"
    features = replace(adm.DEFAULT_FEATURES, **{feature: adm.ENABLED})
    assert adm.admit(body, features) == []


def test_knative_features_do_not_apply_to_raw_deployments() -> None:
    body = good_raw()
    body["spec"]["predictor"]["nodeSelector"] = {"pool": "gpu"}
    body["spec"]["predictor"]["securityContext"] = {"fsGroup": 1}
    assert adm.admit(body) == []


def test_pod_security_context_fields_outside_the_mask_are_refused() -> None:
    sc = {"runAsNonRoot": True, "sysctls": [{"name": "x", "value": "1"}]}
    on = adm.PLACEMENT_FEATURES
    assert adm.knative_pod_security_context(sc, on) == [
        "must not set the field(s): securityContext.sysctls"
    ]
    secure = replace(adm.DEFAULT_FEATURES, secure_pod_defaults=adm.ENABLED)
    only_seccomp = {"seccompProfile": {"type": "RuntimeDefault"}}
    assert adm.knative_pod_security_context(only_seccomp, secure) == []
    assert adm.knative_pod_security_context({"runAsUser": 1, **only_seccomp}, secure)


def test_emptydir_needs_its_feature() -> None:
    body = good_knative()
    off = replace(adm.DEFAULT_FEATURES, podspec_volumes_emptydir=adm.DISABLED)
    assert any("EmptyDir volume support is disabled" in e for e in adm.admit(body, off))


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"name": "queue-proxy"}, "reserved container name"),
        ({"env": [{"name": "PORT", "value": "1"}]}, "reserved environment variable"),
        ({"ports": [{"containerPort": 8012}]}, "reserved port"),
        ({"ports": [{"containerPort": 8080, "name": "web"}]}, "is not allowed"),
        ({"ports": [{"containerPort": 8080, "protocol": "UDP"}]}, "invalid protocol"),
        ({"volumeMounts": [{"name": "scratch", "mountPath": "/dev"}]}, "reserved path"),
        ({"volumeMounts": [{"name": "other", "mountPath": "/x"}]}, "names no volume"),
        ({"lifecycle": {"preStop": {}}}, "must not set the field(s): lifecycle"),
        ({"securityContext": {"privileged": True}}, "securityContext.privileged"),
        ({"securityContext": {"capabilities": {"add": ["NET_ADMIN"]}}}, "capabilities.add"),
        ({"envFrom": [{}]}, "exactly one of secretRef"),
    ],
)
def test_knative_container_rules(change: dict[str, Any], message: str) -> None:
    body = good_knative()
    body["spec"]["predictor"]["containers"][0].update(change)
    errors = adm.admit(body, adm.PLACEMENT_FEATURES)
    assert any(message in e for e in errors), errors
