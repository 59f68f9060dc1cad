"""KServe InferenceService manifests and status reading, as pure functions on dicts.

One function gives the whole wanted InferenceService for (stable, canary, weight):

- Serverless (KServe's "Knative" mode): the predictor is the newest spec and
  ``canaryTrafficPercent`` sends ``weight`` to it; KServe keeps the rest on the previous
  rolled-out revision (stable). A rollback pins ``canaryTrafficPercent: 0`` before the
  predictor goes back to stable.
- RawDeployment (KServe's "Standard" mode): the predictor is stable and ``spec.canary[]``
  carries the candidate with its ``trafficPercent``.

Tag routing is on, so the prober reaches each revision directly and its probes pair up.

What a real cluster admits goes beyond KServe's CRD schema: KServe's validating webhook and,
in Serverless mode, Knative's (pod fields behind feature flags). The rules are encoded in
``tests/support/admission.py`` and every manifest shape is checked against them; where a
spec asks for something the cluster would refuse (GPU placement on Serverless with the
Knative features off), ``ManifestError`` says which feature to turn on instead of writing
an object the webhook rejects.

With a joiner configured (``KServeSettings.joiner_events_url``) every predictor, canary
included, both runtimes and both modes, gets ``logger: {mode: all, url}``: KServe's agent
then posts each request and 200 answer to the joiner, and the URL's query names the arm
(:func:`~modeldeploy.serving.contract.joiner.logger_url`), because in Serverless mode each
revision keeps the logger block it was created with. kserve-python predictors then leave
labels to the joiner (``--labels-at-joiner``: no feedback route, nothing counted twice).

kserve-python predictors authenticate labels (docs/serving.md, "Label contract"): the
``label_auth_secret`` is a read-only Secret volume at ``label_auth_mount_path`` and the
container gets ``--label-token-file``/``--control-token-file`` there. Triton predictors have
no feedback endpoint, so they get neither.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from modeldeploy.operator.api.status import VersionRef
from modeldeploy.operator.platforms.base import Target
from modeldeploy.operator.settings import KServeSettings
from modeldeploy.registry.triton import TritonUriError, triton_uri
from modeldeploy.registry.uris import redact_uri
from modeldeploy.serving.auth import CONTROL_TOKEN_FILE, LABEL_TOKEN_FILE
from modeldeploy.serving.contract.args import DEFAULT_HTTP_PORT, PredictorOptions, predictor_args
from modeldeploy.serving.contract.joiner import logger_url
from modeldeploy.serving.contract.triton import (
    ENV_DEPLOYMENT,
    ENV_RESPONSE_DETAIL,
    ENV_ROLE,
    TRITON_METRICS_ARGS,
)

API_VERSION = "serving.kserve.io/v1beta1"
DEPLOYMENT_MODE = "serving.kserve.io/deploymentMode"
DEFAULT_SETTINGS = KServeSettings()
DEFAULT_IMAGE = DEFAULT_SETTINGS.predictor_image
HTTP_PORT = DEFAULT_HTTP_PORT

# KServe renamed the modes (Serverless -> Knative, RawDeployment -> Standard) and folds the
# old names into the new ones (ParseDeploymentMode, kserve_constants.go:574). Its canary
# rule compares the annotation with "Standard" literally, and an update is refused when the
# annotation differs from the (normalised) mode in the status, so the operator writes the
# current names.
MODE_ALIASES = {"Serverless": "Knative", "RawDeployment": "Standard"}
# Object names KServe accepts (IsvcNameFmt, kserve_isvc_validation.go:46).
ISVC_NAME = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
# URIs KServe's storage initializer can fetch (its default ClusterStorageContainer).
FETCHABLE = ("s3://", "gs://", "https://", "http://", "pvc://", "hf://", "hdfs://", "webhdfs://")
# A custom predictor's storage URI is this variable on kserve-container (KServe's
# CustomPredictor.GetStorageUri; constants.CustomSpecStorageUriEnvVarKey).
STORAGE_URI_ENV = "STORAGE_URI"
LABEL_AUTH_VOLUME = "label-auth"

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


class ManifestError(ValueError):
    """The wanted InferenceService would be refused by the cluster; the message says why."""


def canonical_mode(mode: str) -> str:
    """KServe's current name for a deploymentMode (the empty annotation means Standard)."""
    if not mode:
        return "Standard"
    return MODE_ALIASES.get(mode, mode)


def canary_name(ref: VersionRef) -> str:
    """The RawDeployment canary predictor's name: required, unique, distinct from stable."""
    slug = re.sub(r"[^a-z0-9-]+", "-", ref.version.lower()).strip("-") or "x"
    return f"canary-v{slug}"[:40].rstrip("-")


def _resources(target: Target) -> dict[str, Any]:
    res = target.spec.resources
    amounts: dict[str, Any] = {"cpu": res.cpu, "memory": res.memory}
    limits = dict(amounts)
    if res.gpu:
        limits["nvidia.com/gpu"] = str(res.gpu)
    return {"requests": amounts, "limits": limits}


def _env_from(cfg: KServeSettings) -> list[dict[str, Any]]:
    """Registry credentials by reference only: the Secret's keys become the environment."""
    return [{"secretRef": {"name": cfg.credentials_secret}}] if cfg.credentials_secret else []


def _label_auth_volume(target: Target, cfg: KServeSettings) -> dict[str, Any] | None:
    """The token Secret as a volume, for kserve-python predictors when auth is on.

    Owner-only (0400) where the pod securityContext gives the files the pod's fsGroup
    (the kubelet then adds group read for the non-root UID). Without it (Serverless with
    Knative's ``podspec-securitycontext`` off) the files would stay root's and 0400 would be
    unreadable to UID 65532, so they are 0444 inside the single-container pod instead.
    """
    if not cfg.label_auth_secret or target.spec.runtime == "triton":
        return None
    fs_group = target.spec.deployment_mode != "Serverless" or cfg.knative_security_context
    mode = 0o400 if fs_group else 0o444
    secret = {"secretName": cfg.label_auth_secret, "defaultMode": mode}
    return {"name": LABEL_AUTH_VOLUME, "secret": secret}


def _storage_uri(target: Target, ref: VersionRef) -> str:
    """STORAGE_URI for a custom predictor: only in RawDeployment, where KServe's canary rule
    needs the stable predictor to name its model files, and only for a URI KServe can fetch
    (anything else would fail the storage initializer at pod start)."""
    if target.spec.deployment_mode != "RawDeployment":
        return ""
    return ref.uri if ref.uri.startswith(FETCHABLE) else ""


def _python_container(
    target: Target, ref: VersionRef, role: str, cfg: KServeSettings = DEFAULT_SETTINGS
) -> dict[str, Any]:
    spec = target.spec
    mounts: list[dict[str, Any]] = [{"name": "scratch", "mountPath": "/tmp"}]
    auth: dict[str, Any] = {}
    if _label_auth_volume(target, cfg) is not None:
        root = Path(cfg.label_auth_mount_path)
        auth = {
            "label_token_file": root / LABEL_TOKEN_FILE,
            "control_token_file": root / CONTROL_TOKEN_FILE,
        }
        mounts.append({"name": LABEL_AUTH_VOLUME, "mountPath": str(root), "readOnly": True})
    options = PredictorOptions.from_registry(
        redact_uri(spec.model.registry_uri or target.registry_uri),
        spec.model.name,
        ref.version,
        target.name,
        role,
        http_port=HTTP_PORT,
        labels_at_joiner=bool(cfg.joiner_events_url),
        response_detail=spec.serving.response_detail,
        **auth,
    )
    args = predictor_args(options)
    env = [{"name": "MODELDEPLOY_EXPECTED_DIGEST", "value": ref.digest}]
    if uri := _storage_uri(target, ref):
        env.append({"name": STORAGE_URI_ENV, "value": uri})
    default_image = cfg.predictor_gpu_image if spec.resources.gpu else cfg.predictor_image
    out: dict[str, Any] = {
        "name": "kserve-container",
        "image": spec.image or default_image,
        "args": args,
        "env": env,
        "ports": [{"containerPort": HTTP_PORT, "protocol": "TCP"}],
        "resources": _resources(target),
        "securityContext": dict(CONTAINER_SECURITY),
        "volumeMounts": mounts,
    }
    if env_from := _env_from(cfg):
        out["envFrom"] = env_from
    return out


def _knative_refusal(field: str, feature: str, value: str) -> ManifestError:
    return ManifestError(
        f"spec.resources.{field} is set but Knative refuses it on Serverless predictors "
        f"unless its {feature!r} feature is on: enable it in the knative-serving/"
        f"config-features ConfigMap and set the chart value knative.features.{value}=true, "
        f"or use deploymentMode: RawDeployment"
    )


def _pod_fields(target: Target, cfg: KServeSettings) -> dict[str, Any]:
    """Pod-level fields, only those the cluster admits (Knative gates several behind flags).

    Without ``kubernetes.podspec-securitycontext`` the pod securityContext is left out; the
    container securityContext (always admitted) carries runAsNonRoot, the UID and seccomp.
    """
    res = target.spec.resources
    serverless = target.spec.deployment_mode == "Serverless"
    out: dict[str, Any] = {}
    if not serverless or cfg.knative_security_context:
        out["securityContext"] = dict(POD_SECURITY)
    if serverless and not cfg.knative_emptydir:
        raise ManifestError(
            "Serverless predictors mount an emptyDir on /tmp (the root filesystem is "
            "read-only), and Knative's 'kubernetes.podspec-volumes-emptydir' feature is "
            "declared off: enable it (it is on by default) and set the chart value "
            "knative.features.podspecVolumesEmptydir=true"
        )
    out["volumes"] = [{"name": "scratch", "emptyDir": {}}]
    if (auth := _label_auth_volume(target, cfg)) is not None:
        out["volumes"].append(auth)
    if res.node_selector:
        if serverless and not cfg.knative_node_selector:
            raise _knative_refusal(
                "nodeSelector", "kubernetes.podspec-nodeselector", "podspecNodeSelector"
            )
        out["nodeSelector"] = dict(res.node_selector)
    if res.tolerations:
        if serverless and not cfg.knative_tolerations:
            raise _knative_refusal(
                "tolerations", "kubernetes.podspec-tolerations", "podspecTolerations"
            )
        out["tolerations"] = [t.manifest() for t in res.tolerations]
    if cfg.service_account:
        out["serviceAccountName"] = cfg.service_account
    return out


def predictor(
    target: Target,
    ref: VersionRef,
    role: str,
    cfg: KServeSettings = DEFAULT_SETTINGS,
    *,
    canary_slot: bool = False,
) -> dict[str, Any]:
    """The predictor (or canary predictor) component serving ``ref``.

    ``canary_slot``: the entry of a RawDeployment ``spec.canary[]``, which KServe requires
    to be named and to leave replicas to KServe (no maxReplicas, kserve_isvc_validation.go
    :203 and :236).
    """
    spec = target.spec
    res = spec.resources
    out: dict[str, Any] = {}
    if canary_slot:
        out["name"] = canary_name(ref)
    else:
        out["minReplicas"] = res.min_replicas
        out["maxReplicas"] = res.max_replicas
    out["labels"] = {"modeldeploy.io/role": role, "modeldeploy.io/version": ref.version}
    if cfg.joiner_events_url:
        url = logger_url(cfg.joiner_events_url, target.name, role, ref.version)
        out["logger"] = {"mode": "all", "url": url}
    out.update(_pod_fields(target, cfg))
    if spec.runtime == "triton":
        # No ``name``: KServe refuses it on a standard predictor (kserve_isvc_validation.go:296).
        model: dict[str, Any] = {
            "modelFormat": {"name": "triton"},
            "protocolVersion": "v2",
            "storageUri": _triton_storage_uri(target, ref, cfg),
            "image": spec.image or cfg.triton_image,
            "args": list(TRITON_METRICS_ARGS),
            "env": [
                {"name": ENV_DEPLOYMENT, "value": target.name},
                {"name": ENV_ROLE, "value": role},
                {"name": ENV_RESPONSE_DETAIL, "value": spec.serving.response_detail},
            ],
            "resources": _resources(target),
            "securityContext": dict(CONTAINER_SECURITY),
            "volumeMounts": [{"name": "scratch", "mountPath": "/tmp"}],
        }
        if canary_slot:
            # The CRD's canary[].predictor.model requires a name, while KServe refuses one
            # on the stable predictor's model (kserve_isvc_validation.go:296 reads only
            # spec.predictor); kserve-container is the name KServe gives it anyway.
            model = {"name": "kserve-container", **model}
        if env_from := _env_from(cfg):
            model["envFrom"] = env_from
        out["model"] = model
    else:
        out["containers"] = [_python_container(target, ref, role, cfg)]
    return out


def _triton_storage_uri(target: Target, ref: VersionRef, cfg: KServeSettings) -> str:
    """Where KServe's storage initializer fetches this version's Triton repository.

    The registry version's own source is an MLflow URI holding a Hugging Face checkpoint,
    which the storage initializer cannot fetch and Triton cannot load (it would report ready
    with an empty model index), so a triton runtime needs the published repository's base.
    """
    if not cfg.triton_base_uri:
        raise ManifestError(
            "runtime triton needs the published Triton repositories' location: set the chart "
            "value predictor.tritonBaseUri (MODELDEPLOY_TRITON_BASE_URI, s3://, gs://, https:// "
            "or pvc://) and publish versions with it (docs/serving-router-triton.md)"
        )
    try:
        return triton_uri(cfg.triton_base_uri, target.spec.model.name, ref.version)
    except TritonUriError as exc:
        raise ManifestError(str(exc)) from exc


def _has_storage(pred: Mapping[str, Any]) -> bool:
    if pred.get("model"):
        return True
    env = ((pred.get("containers") or [{}])[0]).get("env") or []
    return any(e.get("name") == STORAGE_URI_ENV for e in env)


def inference_service(
    target: Target,
    stable: VersionRef,
    canary: VersionRef | None = None,
    weight: int = 0,
    cfg: KServeSettings = DEFAULT_SETTINGS,
) -> dict[str, Any]:
    """The wanted InferenceService for stable (and an optional canary at ``weight``%).

    Raises ``ManifestError`` when the cluster would refuse what the spec asks for.
    """
    if not ISVC_NAME.match(target.name):
        raise ManifestError(
            f"KServe refuses the name {target.name!r}: an InferenceService name must match "
            f"{ISVC_NAME.pattern} (lower-case letters, digits and '-', starting with a letter)"
        )
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
            DEPLOYMENT_MODE: canonical_mode(mode),
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
        spec = {"predictor": predictor(target, stable, "stable", cfg)}
    elif mode == "Serverless":
        spec = {
            "predictor": {
                **predictor(target, canary, "canary", cfg),
                "canaryTrafficPercent": weight,
            }
        }
    else:
        stable_pred = predictor(target, stable, "stable", cfg)
        if not _has_storage(stable_pred):
            raise ManifestError(
                "KServe runs a RawDeployment canary only beside a stable predictor with a "
                f"storage URI it can fetch ({', '.join(FETCHABLE)}); version {stable.version} "
                f"is at {stable.uri or '(no URI)'!r}: store the registry's artifacts in S3/GCS "
                "or use deploymentMode: Serverless"
            )
        spec = {
            "predictor": stable_pred,
            "canary": [
                {
                    "predictor": predictor(target, canary, "canary", cfg, canary_slot=True),
                    "trafficPercent": weight,
                }
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
