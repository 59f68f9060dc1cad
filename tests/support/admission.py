"""KServe's and Knative's admission rules that bite what the operator writes.

A CRD schema is not the whole story: KServe's validating webhook and, for Serverless
(Knative) predictors, Knative's webhook refuse objects the schema accepts. Each rule here is
a small function returning error strings (empty: admitted), with the upstream source line
it encodes, in the vendored files under ``tests/upstream/rules/``:

- ``kserve_isvc_validation.go`` (KS:<line>), ``kserve_constants.go`` (KC:<line>)
- ``knative_fieldmask.go`` (KF:<line>), ``knative_k8s_validation.go`` (KV:<line>)

Only the rules that can touch an InferenceService the operator builds are encoded (no
transformer, explainer, multi-node or autoscaler annotations: the operator writes none).
``admit`` runs them all, the way the webhooks would.
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from typing import Any

Obj = Mapping[str, Any]

ENABLED, ALLOWED, DISABLED = "Enabled", "Allowed", "Disabled"


@dataclass(frozen=True)
class KnativeFeatures:
    """Knative's config-features flags that gate pod fields, at their upstream defaults.

    Defaults: knative/serving ``config/core/configmaps/features.yaml`` (commit 03608505)
    and ``pkg/apis/config/features.go`` ``defaultFeaturesConfig()`` (commit 015a69d7), which
    agree: every pod field below is "Disabled" except emptyDir volumes ("Enabled").
    The fieldmask (KF:222-305, KF:51-90, KF:667-705, KF:747-768) shows which field each
    flag gates.
    """

    podspec_affinity: str = DISABLED  # kubernetes.podspec-affinity -> affinity
    podspec_topologyspreadconstraints: str = DISABLED  # -> topologySpreadConstraints
    podspec_hostaliases: str = DISABLED  # -> hostAliases
    podspec_nodeselector: str = DISABLED  # kubernetes.podspec-nodeselector -> nodeSelector
    podspec_runtimeclassname: str = DISABLED  # -> runtimeClassName
    podspec_tolerations: str = DISABLED  # kubernetes.podspec-tolerations -> tolerations
    podspec_securitycontext: str = DISABLED  # kubernetes.podspec-securitycontext
    podspec_priorityclassname: str = DISABLED  # -> priorityClassName
    podspec_schedulername: str = DISABLED  # -> schedulerName
    podspec_init_containers: str = DISABLED  # kubernetes.podspec-init-containers
    podspec_dnspolicy: str = DISABLED  # -> dnsPolicy
    podspec_dnsconfig: str = DISABLED  # -> dnsConfig
    podspec_volumes_emptydir: str = ENABLED  # kubernetes.podspec-volumes-emptydir
    podspec_persistent_volume_claim: str = DISABLED
    containerspec_addcapabilities: str = DISABLED  # capabilities.add
    secure_pod_defaults: str = DISABLED  # secure-pod-defaults


DEFAULT_FEATURES = KnativeFeatures()
# What a cluster admin turns on for the operator's GPU placement and pod securityContext.
PLACEMENT_FEATURES = replace(
    DEFAULT_FEATURES,
    podspec_nodeselector=ENABLED,
    podspec_tolerations=ENABLED,
    podspec_securitycontext=ENABLED,
)


def _on(flag: str) -> bool:
    """``!= config.Disabled``: how the fieldmask reads a flag (Allowed counts as on)."""
    return flag != DISABLED


# -- KServe: kserve_isvc_validation.go ------------------------------------------------------

ISVC_NAME = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")  # KS:46 (IsvcNameFmt), KS:55
IMPLEMENTATIONS = (  # the predictor implementations KS:276-297 lists, plus custom containers
    "sklearn",
    "xgboost",
    "tensorflow",
    "pytorch",
    "triton",
    "onnx",
    "huggingface",
    "pmml",
    "lightgbm",
    "paddle",
    "model",
)


def parse_deployment_mode(mode: str) -> str:
    """KC:574-590 ParseDeploymentMode: "" -> Standard, legacy names folded into new ones."""
    if not mode:
        return "Standard"  # KC:569 DefaultDeployment
    return {"RawDeployment": "Standard", "Serverless": "Knative"}.get(mode, mode)  # KC:583-586


def _mode_annotation(isvc: Obj) -> str:
    ann = (isvc.get("metadata") or {}).get("annotations") or {}
    return str(ann.get("serving.kserve.io/deploymentMode", ""))  # KC:115


def isvc_name(isvc: Obj) -> list[str]:
    """KS:469-474 validateInferenceServiceName."""
    name = str((isvc.get("metadata") or {}).get("name", ""))
    return [] if ISVC_NAME.match(name) else [f"name {name!r} does not match {ISVC_NAME.pattern}"]


def standard_predictor_name(isvc: Obj) -> list[str]:
    """KS:268-300 validatePredictor: no ``name`` inside a standard predictor implementation."""
    pred = (isvc.get("spec") or {}).get("predictor") or {}
    return [
        f"predictor.{kind}: the 'name' field is not allowed in standard predictor"
        for kind in IMPLEMENTATIONS
        if (pred.get(kind) or {}).get("name")
    ]


def exactly_one_implementation(pred: Obj, where: str = "predictor") -> list[str]:
    """KS:163 and KS:221 validateExactlyOneImplementation: one framework, model or custom
    containers (the function sits in KServe's component.go; its call sites are vendored)."""
    found = [k for k in IMPLEMENTATIONS if pred.get(k)]
    if pred.get("containers"):
        found.append("containers")
    if len(found) != 1:
        return [f"{where}: exactly one implementation is required, found {found or 'none'}"]
    return []


def _storage_uri(pred: Obj) -> str | None:
    """GetImplementation().GetStorageUri(): an implementation's storageUri, or for custom
    containers the STORAGE_URI env of kserve-container (KC:335; CustomPredictor)."""
    for kind in IMPLEMENTATIONS:
        if pred.get(kind):
            uri = pred[kind].get("storageUri")
            return None if uri is None else str(uri)
    for container in pred.get("containers") or []:
        if container.get("name") == "kserve-container":
            for env in container.get("env") or []:
                if env.get("name") == "STORAGE_URI":
                    return str(env.get("value", ""))
            break
    return None


def canary_specs(isvc: Obj) -> list[str]:
    """KS:183-266 validateCanarySpecs."""
    spec = isvc.get("spec") or {}
    canaries = spec.get("canary") or []
    if not canaries:
        return []  # KS:184
    if _mode_annotation(isvc) != "Standard":  # KS:188-191: the annotation, literally
        return [f"canary is only supported in Standard mode, not {_mode_annotation(isvc)!r}"]
    stable = spec.get("predictor") or {}
    errors: list[str] = []
    if _storage_uri(stable) is None and stable.get("model") is None:  # KS:193-195
        errors.append("canary requires a stable predictor with a model (storageUri or model)")
    names: set[str] = set()
    total = 0
    for i, entry in enumerate(canaries):
        pred = entry.get("predictor") or {}
        name = str(pred.get("name") or "")
        if not name:  # KS:203-205
            errors.append(f"canary[{i}] predictor.name is required")
            continue
        if name in names:  # KS:207-209
            errors.append(f"canary predictor.name {name!r} is duplicated")
        names.add(name)
        if name == (stable.get("name") or ""):  # KS:212-214
            errors.append(f"canary predictor.name {name!r} conflicts with the stable name")
        traffic = int(entry.get("trafficPercent", 0))
        if not 0 <= traffic <= 100:  # KS:216-218
            errors.append(f"canary {name!r} trafficPercent must be between 0 and 100")
        total += traffic
        errors += exactly_one_implementation(pred, f"canary {name!r} predictor")  # KS:221
        if pred.get("workerSpec") is not None:  # KS:231-233
            errors.append(f"canary {name!r} must not set workerSpec")
        if int(pred.get("maxReplicas") or 0) > 0:  # KS:236-238
            errors.append(f"canary {name!r} must not set maxReplicas")
        for field in ("scaleTarget", "scaleMetric", "autoScaling"):  # KS:239-247
            if pred.get(field) is not None:
                errors.append(f"canary {name!r} must not set {field}")
        if pred.get("minReplicas") is not None:  # KS:249-258
            stable_min = stable.get("minReplicas")
            stable_min = 1 if stable_min is None else int(stable_min)
            if int(pred["minReplicas"]) > stable_min:
                errors.append(f"canary {name!r} minReplicas must not exceed stable's")
    if total > 100:  # KS:261-263
        errors.append(f"sum of canary trafficPercent values ({total}) must be <= 100")
    return errors


def kpa_extension(isvc: Obj) -> list[str]:
    """KS:446-466 + KS:645-648: outside Standard mode (KPA) no deploymentStrategy."""
    if _mode_annotation(isvc) == "Standard":
        return []
    pred = (isvc.get("spec") or {}).get("predictor") or {}
    if pred.get("deploymentStrategy") is not None:
        return ["customizing deploymentStrategy is only supported for raw deployment mode"]
    return []


def deployment_mode_update(new: Obj, old_status_mode: str) -> list[str]:
    """KS:691-701 validateDeploymentMode (on update): the annotation, if present, must equal
    the normalised mode the old object's status records."""
    if not old_status_mode:
        return []  # KS:692-694
    status_mode = parse_deployment_mode(old_status_mode)  # KS:695
    ann = (new.get("metadata") or {}).get("annotations") or {}
    key = "serving.kserve.io/deploymentMode"
    if key in ann and ann[key] != status_mode:  # KS:696-698
        return [f"deploymentMode cannot be changed from {status_mode!r} to {ann[key]!r}"]
    return []


def predictor_name_change(new: Obj, old: Obj) -> list[str]:
    """KS:703-713 validatePredictorNameChange: a new predictor.name needs a new model."""
    new_pred = (new.get("spec") or {}).get("predictor") or {}
    old_pred = (old.get("spec") or {}).get("predictor") or {}
    if (new_pred.get("name") or "") == (old_pred.get("name") or ""):
        return []
    if (_storage_uri(old_pred) or "") == (_storage_uri(new_pred) or ""):
        return ["predictor.name change requires a model change (e.g. storageUri)"]
    return []


def kserve_rules(isvc: Obj) -> list[str]:
    """KS:119-181 validateInferenceService, the parts that apply to our objects."""
    pred = (isvc.get("spec") or {}).get("predictor") or {}
    return (
        isvc_name(isvc)
        + standard_predictor_name(isvc)
        + exactly_one_implementation(pred)
        + kpa_extension(isvc)
        + canary_specs(isvc)
    )


# -- Knative: fieldmask.go and k8s_validation.go, on the pod a Serverless predictor becomes --

POD_ALWAYS = {  # KF:231-239
    "serviceAccountName",
    "containers",
    "volumes",
    "imagePullSecrets",
    "enableServiceLinks",
    "automountServiceAccountToken",  # only false (KF:237-239)
}
POD_GATED = {  # KF:242-292: field -> the flag that lets it through
    "affinity": "podspec_affinity",
    "topologySpreadConstraints": "podspec_topologyspreadconstraints",
    "hostAliases": "podspec_hostaliases",
    "nodeSelector": "podspec_nodeselector",
    "runtimeClassName": "podspec_runtimeclassname",
    "tolerations": "podspec_tolerations",
    "priorityClassName": "podspec_priorityclassname",
    "schedulerName": "podspec_schedulername",
    "initContainers": "podspec_init_containers",
    "dnsPolicy": "podspec_dnspolicy",
    "dnsConfig": "podspec_dnsconfig",
}
# Every other corev1.PodSpec field the KServe predictor carries is masked out (KF:293-302 and
# the fields PodSpecMask never copies); the KServe-only predictor fields are not pod fields.
KSERVE_PREDICTOR_FIELDS = {
    "name",
    "minReplicas",
    "maxReplicas",
    "scaleTarget",
    "scaleMetric",
    "scaleMetricType",
    "autoScaling",
    "containerConcurrency",
    "timeout",
    "canaryTrafficPercent",
    "logger",
    "batcher",
    "labels",
    "annotations",
    "deploymentStrategy",
    "storageUris",
    "storageContainerName",
    "workerSpec",
    *IMPLEMENTATIONS,
}
CONTAINER_ALLOWED = {  # KF:318-334 ContainerMask
    "name",
    "args",
    "command",
    "env",
    "workingDir",
    "envFrom",
    "image",
    "imagePullPolicy",
    "livenessProbe",
    "ports",
    "readinessProbe",
    "resources",
    "securityContext",
    "startupProbe",
    "terminationMessagePath",
    "terminationMessagePolicy",
    "volumeMounts",
}
CONTAINER_SC_ALLOWED = {  # KF:718-733 SecurityContextMask
    "capabilities",
    "readOnlyRootFilesystem",
    "runAsUser",
    "runAsGroup",
    "runAsNonRoot",
    "allowPrivilegeEscalation",
    "seccompProfile",
}
POD_SC_FIELDS = {  # KF:691-696 PodSecurityContextMask, with the flag on
    "runAsUser",
    "runAsGroup",
    "runAsNonRoot",
    "fsGroup",
    "supplementalGroups",
    "seccompProfile",
}
RESERVED_CONTAINER_NAMES = {"queue-proxy"}  # KV:50-52, KV:623
RESERVED_ENV = {"PORT", "K_SERVICE", "K_CONFIGURATION", "K_REVISION"}  # KV:54-59, KV:355
# KV:61-67: networking.BackendHTTPPort 8012, BackendHTTP2Port 8013, QueueAdminPort 8022,
# AutoscalingQueueMetricsPort 9090, UserQueueMetricsPort 9091, profiling port 8008
# (the values are knative.dev/networking and knative.dev/pkg constants).
RESERVED_PORTS = {8012, 8013, 8022, 9090, 9091, 8008}
VALID_PORT_NAMES = {"h2c", "http1", ""}  # KV:75-79
RESERVED_PATHS = {"/", "/dev", "/dev/log"}  # KV:44-48, KV:726
VOLUME_SOURCES_ALWAYS = {"secret", "configMap", "projected"}  # KF:59-61
# Container fields of a KServe model spec that are not container fields.
MODEL_ONLY_FIELDS = {"modelFormat", "protocolVersion", "storageUri", "runtime", "storage"}


def pod_of_predictor(pred: Obj) -> dict[str, Any]:
    """The pod spec KServe hands Knative for a predictor: its pod fields plus the
    kserve-container (a model spec's container fields become that container)."""
    pod = {k: v for k, v in pred.items() if k not in KSERVE_PREDICTOR_FIELDS}
    model = pred.get("model")
    if model:
        container = {k: v for k, v in model.items() if k not in MODEL_ONLY_FIELDS}
        container["name"] = "kserve-container"
        container.setdefault("image", "(the ServingRuntime's image)")  # KServe fills it in
        pod["containers"] = [container, *(pred.get("containers") or [])]
    return pod


def knative_pod_spec(pod: Obj, features: KnativeFeatures = DEFAULT_FEATURES) -> list[str]:
    """KF:222-305 PodSpecMask, as KV:409 CheckDisallowedFields applies it."""
    errors: list[str] = []
    for field in pod:
        if field in POD_ALWAYS:
            if field == "automountServiceAccountToken" and pod[field] is not False:
                errors.append("must not set automountServiceAccountToken (only false)")
            continue
        if field in POD_GATED and _on(getattr(features, POD_GATED[field])):
            continue
        if field == "securityContext":
            continue  # KF:260-265; its content is checked by knative_pod_security_context
        errors.append(f"must not set the field(s): {field}")
    return errors


def knative_pod_security_context(
    sc: Obj | None, features: KnativeFeatures = DEFAULT_FEATURES
) -> list[str]:
    """KF:260-265 + KF:667-705 PodSecurityContextMask (checked at KV:960-965)."""
    if sc is None:
        return []
    allowed: set[str] = set()
    secure = features.secure_pod_defaults in (ENABLED, "AllowRootBounded")
    if secure and (sc.get("seccompProfile") or {}).get("type") in ("RuntimeDefault", "Unconfined"):
        allowed.add("seccompProfile")  # KF:674-684
    if _on(features.podspec_securitycontext):  # KF:687-689
        allowed |= POD_SC_FIELDS
    elif not secure:
        return ["must not set the field(s): securityContext"]  # KF:260-265: masked whole
    return [f"must not set the field(s): securityContext.{f}" for f in sc if f not in allowed]


def knative_container(
    container: Obj, features: KnativeFeatures = DEFAULT_FEATURES, volumes: Iterable[str] = ()
) -> list[str]:
    """KV:616-665 validate: ContainerMask, securityContext, env, ports, mounts."""
    name = container.get("name", "")
    errors = [
        f"{name}: must not set the field(s): {f}" for f in container if f not in CONTAINER_ALLOWED
    ]
    if name in RESERVED_CONTAINER_NAMES:  # KV:623
        errors.append(f"{name!r} is a reserved container name")
    if not container.get("image"):  # KV:636 (Knative's default resolution needs an image)
        errors.append(f"{name}: missing field(s): image")
    sc = container.get("securityContext") or {}
    errors += [
        f"{name}: must not set securityContext.{f}"
        for f in sc
        if f not in CONTAINER_SC_ALLOWED and not (f == "privileged" and sc[f] is False)
    ]  # KF:711-741
    caps = sc.get("capabilities") or {}
    net_bind_only = features.secure_pod_defaults in (ENABLED, "AllowRootBounded") and caps.get(
        "add"
    ) == ["NET_BIND_SERVICE"]
    if caps.get("add") and features.containerspec_addcapabilities != ENABLED and not net_bind_only:
        # KF:747-768
        errors.append(f"{name}: must not set securityContext.capabilities.add")
    for env in container.get("env") or []:
        if env.get("name") in RESERVED_ENV:  # KV:355-359
            errors.append(f"{env.get('name')!r} is a reserved environment variable")
    for i, source in enumerate(container.get("envFrom") or []):  # KV:373-399
        refs = [k for k in ("secretRef", "configMapRef") if source.get(k)]
        if len(refs) != 1:
            errors.append(f"{name}: envFrom[{i}] needs exactly one of secretRef, configMapRef")
        extra = set(source) - {"prefix", "secretRef", "configMapRef"}
        errors += [f"{name}: envFrom[{i}]: must not set {f}" for f in sorted(extra)]
    ports = container.get("ports") or []
    if ports:  # KV:772-797 (the first port is the user port)
        port = ports[0]
        if int(port.get("containerPort", 0)) in RESERVED_PORTS:  # KV:817
            errors.append(f"{port.get('containerPort')} is a reserved port")
        if port.get("protocol", "TCP") != "TCP":  # KV:787-789
            errors.append(f"invalid protocol {port.get('protocol')!r}")
        if port.get("name", "") not in VALID_PORT_NAMES:  # KV:791-797
            errors.append(f"Port name {port.get('name')} is not allowed")
        if set(port) - {"containerPort", "name", "protocol"}:  # ContainerPortMask
            errors.append(f"{name}: must not set hostIP/hostPort")
    mounted = set(volumes)
    for mount in container.get("volumeMounts") or []:  # KV:705-740
        mount_path = str(mount.get("mountPath", ""))
        if not mount_path:
            errors.append(f"{name}: missing field(s): mountPath")
        elif posixpath.normpath(mount_path) in RESERVED_PATHS:
            errors.append(f"mountPath {mount_path!r} is a reserved path")
        elif not mount_path.startswith("/"):
            errors.append(f"{name}: mountPath {mount_path!r} must be absolute")
        if mount.get("name") not in mounted:
            errors.append(f"{name}: volumeMount {mount.get('name')!r} names no volume")
    return errors


def knative_volumes(
    volumes: Iterable[Obj], features: KnativeFeatures = DEFAULT_FEATURES
) -> list[str]:
    """KV:122-225 validateVolume with KF:51-90 VolumeSourceMask."""
    errors: list[str] = []
    for volume in volumes:
        name = volume.get("name", "")
        sources = [k for k in volume if k != "name"]
        if "emptyDir" in volume and features.podspec_volumes_emptydir != ENABLED:  # KV:129
            errors.append(f"EmptyDir volume support is disabled, but found EmptyDir volume {name}")
        if "persistentVolumeClaim" in volume and not _on(features.podspec_persistent_volume_claim):
            errors.append(f"{name}: must not set persistentVolumeClaim")  # KF:67-69
        allowed = VOLUME_SOURCES_ALWAYS | {"emptyDir", "persistentVolumeClaim"}
        errors += [f"{name}: must not set {s}" for s in sources if s not in allowed]
        if len(sources) != 1:  # KV:207-224
            errors.append(f"{name}: expected exactly one volume source, got {sources}")
    return errors


def knative_rules(pred: Obj, features: KnativeFeatures = DEFAULT_FEATURES) -> list[str]:
    """KV:402-447 ValidatePodSpec on the pod KServe derives from a Serverless predictor."""
    pod = pod_of_predictor(pred)
    volumes = pod.get("volumes") or []
    errors = knative_pod_spec(pod, features)
    errors += knative_pod_security_context(pod.get("securityContext"), features)
    errors += knative_volumes(volumes, features)
    containers = pod.get("containers") or []
    if sum(len(c.get("ports") or []) for c in containers) > 1:  # KV:535-541
        errors.append("more than one container port is set")
    names = [v.get("name") for v in volumes]
    for container in containers:
        errors += knative_container(container, features, names)
    if pod.get("serviceAccountName") and not re.match(  # KV:441-445 (DNS-1123 subdomain)
        r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$",
        pod["serviceAccountName"],
    ):
        errors.append(f"invalid serviceAccountName {pod['serviceAccountName']!r}")
    return errors


# -- both webhooks ---------------------------------------------------------------------------


def admit(
    isvc: Obj,
    features: KnativeFeatures = DEFAULT_FEATURES,
    old: Obj | None = None,
) -> list[str]:
    """Every refusal KServe's and (in Knative mode) Knative's webhooks would give ``isvc``;
    ``old`` (as stored, with its status) adds the update-only rules."""
    errors = kserve_rules(isvc)
    if old is not None:
        errors += deployment_mode_update(
            isvc, str((old.get("status") or {}).get("deploymentMode", ""))
        )
        errors += predictor_name_change(isvc, old)
    if parse_deployment_mode(_mode_annotation(isvc)) == "Knative":
        errors += knative_rules((isvc.get("spec") or {}).get("predictor") or {}, features)
    return errors
