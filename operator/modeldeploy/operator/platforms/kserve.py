"""The KServe platform: writes InferenceServices and reads their status.

All shaping is in ``kserve_manifests`` (pure); this module only gets, creates and
replaces objects through an injected ``CustomObjectsApi``, and maps API errors to
``PlatformError`` (409/5xx/unreachable are transient, the rest are not). A spec the
cluster would refuse (``ManifestError``) is a permanent ``PlatformError`` whose message
says what to change; nothing is written.

An object is replaced only when something the operator owns differs (``same_isvc``):
KServe and the API server default fields and rename the deploymentMode, and comparing
whole specs would rewrite the InferenceService (and roll a new revision) on every tick.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from decimal import Decimal, InvalidOperation
from typing import Any

from modeldeploy.operator.api.status import ArmHealth, VersionRef
from modeldeploy.operator.platforms import kserve_manifests as m
from modeldeploy.operator.platforms.base import PlatformError, Target
from modeldeploy.operator.platforms.kserve_arms import ArmsConfigMap, arm_urls
from modeldeploy.operator.settings import KServeSettings

GROUP, VERSION, PLURAL = "serving.kserve.io", "v1beta1", "inferenceservices"
log = logging.getLogger("modeldeploy.operator.kserve")

NO_JOINER = (
    "no feedback joiner is configured (chart value joiner.enabled=false): while traffic is "
    "split, a label posted to the InferenceService reaches the arm that served its "
    "prediction only by chance (a Triton arm takes no labels at all), and the golden-set "
    "prober does not run, so live accuracy may not get the labels to decide and the "
    "rollout then holds stable; install the chart with joiner.enabled=true (its default) "
    '(docs/deploy-kubernetes.md, "Labels on a cluster: the joiner")'
)


class KServePlatform:
    def __init__(self, api: Any, settings: KServeSettings | None = None) -> None:
        self.api = api  # kubernetes.client.CustomObjectsApi
        # Built in the kopf startup hook (make_platform), so reading the environment here
        # is still reading it once, at startup.
        self.settings = settings if settings is not None else KServeSettings.from_env()
        self._arms: ArmsConfigMap | None = None
        if self.settings.joiner_arms_configmap:
            self._arms = ArmsConfigMap(self._core_api(), self.settings.joiner_arms_configmap)
        if not self.settings.joiner_events_url:
            log.warning("%s", NO_JOINER)

    def label_path_problem(self, target: Target) -> str:
        """:data:`NO_JOINER` without a joiner (said again as an Event at each canary start,
        where the people who run that ModelDeployment look), else ""."""
        return "" if self.settings.joiner_events_url else NO_JOINER

    def _core_api(self) -> Any:
        """A CoreV1Api on the same connection as ``api`` (the arms ConfigMap is core v1)."""
        import kubernetes

        return kubernetes.client.CoreV1Api(getattr(self.api, "api_client", None))

    def _wanted(
        self,
        target: Target,
        stable: VersionRef,
        canary: VersionRef | None = None,
        weight: int = 0,
    ) -> dict[str, Any]:
        try:
            return m.inference_service(target, stable, canary, weight, cfg=self.settings)
        except m.ManifestError as exc:
            raise PlatformError(str(exc), transient=False) from exc

    def _call(self, fn: Any, *args: Any) -> Any:
        from kubernetes.client.exceptions import ApiException
        from urllib3.exceptions import HTTPError

        try:
            return fn(*args)
        except ApiException as exc:
            transient = exc.status in (409, 429) or exc.status >= 500
            raise PlatformError(f"KServe: {exc.status} {exc.reason}", transient=transient) from exc
        except HTTPError as exc:
            raise PlatformError(f"Kubernetes API unreachable: {exc}") from exc

    def _get(self, target: Target) -> dict[str, Any] | None:
        from kubernetes.client.exceptions import ApiException

        try:
            return self.api.get_namespaced_custom_object(
                GROUP, VERSION, target.namespace, PLURAL, target.name
            )
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise PlatformError(f"KServe: {exc.status} {exc.reason}") from exc

    def _apply(self, target: Target, body: dict[str, Any]) -> None:
        current = self._get(target)
        if current is None:
            self._call(
                self.api.create_namespaced_custom_object,
                GROUP,
                VERSION,
                target.namespace,
                PLURAL,
                body,
            )
            return
        if same_isvc(current, body):
            return  # nothing the operator owns changed: no new revision
        body["metadata"]["resourceVersion"] = current["metadata"].get("resourceVersion")
        self._call(
            self.api.replace_namespaced_custom_object,
            GROUP,
            VERSION,
            target.namespace,
            PLURAL,
            target.name,
            body,
        )

    def ensure(self, target: Target, stable: VersionRef) -> None:
        self._apply(target, self._wanted(target, stable))

    def set_canary(
        self, target: Target, stable: VersionRef, canary: VersionRef, weight: int
    ) -> None:
        self._apply(target, self._wanted(target, stable, canary, weight))

    def set_traffic(
        self, target: Target, stable: VersionRef, canary: VersionRef, weight: int
    ) -> None:
        self._apply(target, self._wanted(target, stable, canary, weight))

    def read_traffic(self, target: Target) -> int | None:
        return m.canary_traffic(self._get(target))

    def reassert_traffic(self, target: Target, weight: int) -> int | None:
        """Always None: the split lives in the InferenceService, which KServe's controller
        carries out. A hand edit there is overwritten (``same_isvc`` sees the difference)
        the next time the operator applies the object, at the next step change, not per tick.
        """
        return None

    def is_ready(self, target: Target) -> bool:
        return m.is_ready(self._get(target))

    def health(self, target: Target) -> Mapping[str, ArmHealth]:
        """Stable and canary readiness from the InferenceService status conditions.

        While a canary is declared, its revision is the latest one: the service's
        conditions (``Ready``, ``PredictorReady``, ``LatestDeploymentReady``) say whether it
        serves, and the first False one gives the reason. KServe never says "gone": a
        revision that stays not ready is rolled back by the machine after its bound.
        """
        isvc = self._get(target)
        if isvc is None:
            return {"stable": ArmHealth(False, "InferenceService not found")}
        arms = {"stable": ArmHealth(True)}
        if _declares_canary(isvc):
            ready = m.is_ready(isvc)
            arms["canary"] = ArmHealth(ready, "" if ready else not_ready_reason(isvc))
        return arms

    def metrics_endpoints(self, target: Target) -> list[str]:
        """The ``/metrics`` URLs of the served revisions, from the status' tagged traffic.

        Tag routing gives each revision its own URL; with one replica per revision this
        reaches every process (Prometheus is the provider for scaled-out predictors).
        """
        status = (self._get(target) or {}).get("status") or {}
        traffic = ((status.get("components") or {}).get("predictor") or {}).get("traffic") or []
        urls = [str(t["url"]).rstrip("/") + "/metrics" for t in traffic if t.get("url")]
        if self.settings.joiner_metrics_url:  # labels are counted there (docs/serving.md)
            urls.append(self.settings.joiner_metrics_url)
        return sorted(set(urls))

    def publish_arms(
        self,
        target: Target,
        stable: VersionRef | None,
        canary: VersionRef | None,
        probe: Mapping[str, Any] | None = None,
    ) -> None:
        """Keep the joiner's arms for ``target`` current (``kserve_arms``): the stable and
        canary URLs while ``canary`` serves at its own URL; nothing while it does not yet
        (a stale key could name the previous canary's revision under this version) and
        nothing once the rollout ended.
        A no-op without a joiner arms ConfigMap; never raises (pairing decides nothing)."""
        if self._arms is None:
            return
        if stable is None or canary is None:
            self._arms.remove(target)
            return
        try:
            isvc = self._get(target)
        except PlatformError:
            return  # the tick's own calls report the API's trouble
        urls = arm_urls(isvc, target, canary)
        if urls is None:  # e.g. a new canary version not ready yet: "latest" is the old one
            self._arms.remove(target)
        else:
            self._arms.publish(target, stable, canary, urls, probe)

    def promote(self, target: Target, ref: VersionRef) -> None:
        self._apply(target, self._wanted(target, ref))

    def clean_up(self, target: Target) -> None:
        from kubernetes.client.exceptions import ApiException

        if self._arms is not None:
            self._arms.remove(target)

        try:
            self.api.delete_namespaced_custom_object(
                GROUP, VERSION, target.namespace, PLURAL, target.name
            )
        except ApiException as exc:
            if exc.status != 404:
                raise PlatformError(f"KServe: {exc.status} {exc.reason}") from exc


# Fields the operator writes at some times and leaves out at others: when the wanted object
# lacks one, the stored object must lack it too (elsewhere, extra stored fields are KServe's
# or the API server's defaults and are ignored).
OWNED_OPTIONAL = frozenset(
    {
        "canary",
        "canaryTrafficPercent",
        "nodeSelector",
        "tolerations",
        "securityContext",
        "serviceAccountName",
        "envFrom",
        "model",
        "containers",
        "storageUri",
        "image",
        "logger",
    }
)
_RESOURCE_KEYS = frozenset({"cpu", "memory", "nvidia.com/gpu", "ephemeral-storage"})


_QUANTITY = re.compile(r"^([+-]?[0-9.]+(?:[eE][+-]?[0-9]+)?)([A-Za-z]*)$")
_SUFFIX = {
    "": Decimal(1),
    "m": Decimal("0.001"),
    "k": Decimal(10) ** 3,
    "M": Decimal(10) ** 6,
    "G": Decimal(10) ** 9,
    "T": Decimal(10) ** 12,
    "Ki": Decimal(2) ** 10,
    "Mi": Decimal(2) ** 20,
    "Gi": Decimal(2) ** 30,
    "Ti": Decimal(2) ** 40,
}


def _quantity(value: Any) -> Any:
    """A resource quantity as a number ("1000m" == "1" == 1), else the value unchanged:
    KServe's webhook re-serialises quantities in canonical form."""
    found = _QUANTITY.match(str(value).strip())
    if not found or found.group(2) not in _SUFFIX:
        return value
    try:
        return Decimal(found.group(1)) * _SUFFIX[found.group(2)]
    except InvalidOperation:
        return value


def _covers(current: Any, wanted: Any, key: str = "") -> bool:
    """``current`` holds everything in ``wanted`` (extra defaulted keys allowed), and none
    of the owned optional fields ``wanted`` leaves out."""
    if isinstance(wanted, Mapping):
        if not isinstance(current, Mapping):
            return False
        for k, v in wanted.items():
            if k not in current or not _covers(current[k], v, k):
                return False
        return not any(k in OWNED_OPTIONAL and k not in wanted for k in current)
    if isinstance(wanted, list):
        return (
            isinstance(current, list)
            and len(current) == len(wanted)
            and all(_covers(c, w, key) for c, w in zip(current, wanted, strict=True))
        )
    if key in _RESOURCE_KEYS:
        return bool(_quantity(current) == _quantity(wanted))
    return bool(current == wanted)


def _declares_canary(isvc: Mapping[str, Any]) -> bool:
    """A canary is in the spec (RawDeployment ``spec.canary`` or ``canaryTrafficPercent``)."""
    spec = isvc.get("spec") or {}
    return bool(spec.get("canary")) or "canaryTrafficPercent" in (spec.get("predictor") or {})


def not_ready_reason(isvc: Mapping[str, Any]) -> str:
    """The first False condition of an InferenceService as ``Type: reason: message``."""
    status = isvc.get("status") or {}
    for cond in status.get("conditions") or []:
        if cond.get("status") == "False":
            parts = [cond.get("type"), cond.get("reason"), cond.get("message")]
            return ": ".join(str(p) for p in parts if p)[:300]
    generation = (isvc.get("metadata") or {}).get("generation") or 0
    if (status.get("observedGeneration") or 0) < generation:
        return "KServe has not observed the latest spec yet"
    return "canary revision not ready"


def same_isvc(current: Mapping[str, Any], wanted: Mapping[str, Any]) -> bool:
    """True when the stored InferenceService already is what the operator wants.

    Tolerates what KServe and the API server add: defaulted fields, server metadata and
    status, extra labels and annotations, canonical quantities, and the deploymentMode
    renamed (Serverless -> Knative, RawDeployment -> Standard).
    """
    cur_meta, new_meta = current.get("metadata") or {}, wanted.get("metadata") or {}
    cur_ann = dict(cur_meta.get("annotations") or {})
    new_ann = dict(new_meta.get("annotations") or {})
    mode = m.DEPLOYMENT_MODE
    if m.canonical_mode(cur_ann.pop(mode, "")) != m.canonical_mode(new_ann.pop(mode, "")):
        return False
    if any(cur_ann.get(k) != v for k, v in new_ann.items()):
        return False
    cur_labels = cur_meta.get("labels") or {}
    if any(cur_labels.get(k) != v for k, v in (new_meta.get("labels") or {}).items()):
        return False
    return _covers(current.get("spec") or {}, wanted.get("spec") or {})
