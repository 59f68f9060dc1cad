"""KServe InferenceService manifests and status reading, as pure functions on dicts.

One function gives the whole wanted InferenceService for (stable, canary, weight):

- Serverless: the predictor is the newest spec and ``canaryTrafficPercent`` sends
  ``weight`` to it; KServe keeps the rest on the previous rolled-out revision (stable).
  A rollback pins ``canaryTrafficPercent: 0`` before the predictor goes back to stable.
- RawDeployment: the predictor is stable and ``spec.canary[]`` carries the candidate with
  its ``trafficPercent``.

Tag routing is on, so the prober reaches each revision directly and its probes pair up.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from modeldeploy.operator.api.status import VersionRef
from modeldeploy.operator.platforms.base import Target
from modeldeploy.serving.contract.args import DEFAULT_HTTP_PORT, PredictorOptions, predictor_args

API_VERSION = "serving.kserve.io/v1beta1"
DEFAULT_IMAGE = "ghcr.io/modeldeploy/predictor:0.1.0"
HTTP_PORT = DEFAULT_HTTP_PORT

CONTAINER_SECURITY: dict[str, Any] = {
    "allowPrivilegeEscalation": False,
    "readOnlyRootFilesystem": True,
    "runAsNonRoot": True,
    "runAsUser": 65532,
    "capabilities": {"drop": ["ALL"]},
    "seccompProfile": {"type": "RuntimeDefault"},
}
POD_SECURITY: dict[str, Any] = {
    "runAsNonRoot": True,
    "runAsUser": 65532,
    "fsGroup": 65532,
    "seccompProfile": {"type": "RuntimeDefault"},
}


def _resources(target: Target) -> dict[str, Any]:
    res = target.spec.resources
    amounts: dict[str, Any] = {"cpu": res.cpu, "memory": res.memory}
    limits = dict(amounts)
    if res.gpu:
        limits["nvidia.com/gpu"] = str(res.gpu)
    return {"requests": amounts, "limits": limits}


def _python_container(target: Target, ref: VersionRef, role: str) -> dict[str, Any]:
    spec = target.spec
    options = PredictorOptions.from_registry(
        spec.model.registry_uri or target.registry_uri,
        spec.model.name,
        ref.version,
        target.name,
        role,
        http_port=HTTP_PORT,
    )
    args = predictor_args(options)
    return {
        "name": "kserve-container",
        "image": spec.image or DEFAULT_IMAGE,
        "args": args,
        "env": [{"name": "MODELDEPLOY_EXPECTED_DIGEST", "value": ref.digest}],
        "ports": [{"containerPort": HTTP_PORT, "protocol": "TCP"}],
        "resources": _resources(target),
        "securityContext": dict(CONTAINER_SECURITY),
        "volumeMounts": [{"name": "scratch", "mountPath": "/tmp"}],
    }


def predictor(target: Target, ref: VersionRef, role: str) -> dict[str, Any]:
    """The predictor (or canary predictor) component serving ``ref``."""
    spec = target.spec
    res = spec.resources
    out: dict[str, Any] = {
        "minReplicas": res.min_replicas,
        "maxReplicas": res.max_replicas,
        "securityContext": dict(POD_SECURITY),
        "labels": {"modeldeploy.io/role": role, "modeldeploy.io/version": ref.version},
        "volumes": [{"name": "scratch", "emptyDir": {}}],
    }
    if res.node_selector:
        out["nodeSelector"] = dict(res.node_selector)
    if res.tolerations:
        out["tolerations"] = [dict(t) for t in res.tolerations]
    if spec.runtime == "triton":
        out["model"] = {
            "name": "kserve-container",
            "modelFormat": {"name": "triton"},
            "protocolVersion": "v2",
            "storageUri": ref.uri,
            "resources": _resources(target),
            "securityContext": dict(CONTAINER_SECURITY),
            "volumeMounts": [{"name": "scratch", "mountPath": "/tmp"}],
        }
        if spec.image:
            out["model"]["image"] = spec.image
    else:
        out["containers"] = [_python_container(target, ref, role)]
    return out


def inference_service(
    target: Target, stable: VersionRef, canary: VersionRef | None = None, weight: int = 0
) -> dict[str, Any]:
    """The wanted InferenceService for stable (and an optional canary at ``weight``%)."""
    mode = target.spec.deployment_mode
    metadata: dict[str, Any] = {
        "name": target.name,
        "namespace": target.namespace,
        "labels": {
            "app.kubernetes.io/managed-by": "modeldeploy",
            "modeldeploy.io/deployment": target.name,
            **dict(target.labels),
        },
        "annotations": {
            "serving.kserve.io/deploymentMode": mode,
            "serving.kserve.io/enable-tag-routing": "true",
            "modeldeploy.io/stable-version": stable.version,
            "modeldeploy.io/canary-version": canary.version if canary else "",
        },
    }
    if target.uid:
        metadata["ownerReferences"] = [
            {
                "apiVersion": "modeldeploy.io/v1alpha1",
                "kind": "ModelDeployment",
                "name": target.name,
                "uid": target.uid,
                "controller": True,
                "blockOwnerDeletion": True,
            }
        ]
    spec: dict[str, Any]
    if canary is None:
        spec = {"predictor": predictor(target, stable, "stable")}
    elif mode == "Serverless":
        spec = {
            "predictor": {**predictor(target, canary, "canary"), "canaryTrafficPercent": weight}
        }
    else:
        spec = {
            "predictor": predictor(target, stable, "stable"),
            "canary": [
                {"predictor": predictor(target, canary, "canary"), "trafficPercent": weight}
            ],
        }
    return {
        "apiVersion": API_VERSION,
        "kind": "InferenceService",
        "metadata": metadata,
        "spec": spec,
    }


def _predictor_status(isvc: Mapping[str, Any]) -> Mapping[str, Any]:
    return ((isvc.get("status") or {}).get("components") or {}).get("predictor") or {}


def is_ready(isvc: Mapping[str, Any] | None) -> bool:
    """Ready condition True and the latest created revision is the latest ready one."""
    if not isvc:
        return False
    status = isvc.get("status") or {}
    if (status.get("observedGeneration") or 0) < (
        (isvc.get("metadata") or {}).get("generation") or 0
    ):
        return False
    ready = any(
        c.get("type") == "Ready" and c.get("status") == "True"
        for c in status.get("conditions") or []
    )
    pred = _predictor_status(isvc)
    created, latest = pred.get("latestCreatedRevision"), pred.get("latestReadyRevision")
    return ready and (created is None or created == latest)


def canary_traffic(isvc: Mapping[str, Any] | None) -> int | None:
    """The percent KServe reports on the latest revision while a canary runs, else None."""
    if not isvc:
        return None
    spec = isvc.get("spec") or {}
    if spec.get("canary"):
        return int(spec["canary"][0].get("trafficPercent", 0))
    if "canaryTrafficPercent" not in (spec.get("predictor") or {}):
        return None
    for entry in _predictor_status(isvc).get("traffic") or []:
        if entry.get("latestRevision"):
            return int(entry.get("percent") or 0)
    return None
