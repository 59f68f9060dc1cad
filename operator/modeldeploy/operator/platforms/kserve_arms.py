"""Tell the joiner where each arm of a rollout serves, so it can pair labels on a cluster.

The joiner pairs a label for an item one arm scored by sending the stored input to the
other arm's own URL (docs/serving.md, "The joiner"). While a ModelDeployment has a canary,
the KServe platform writes those URLs into one key of the joiner's arms ConfigMap
(``contract/joiner.py`` ``arms_key``/``arms_entry``) and removes the key when the rollout
ends. Only a JSON merge patch of that one key is sent (``{"data": {key: value-or-null}}``):
operators of other namespaces and ModelDeployments patch their own keys of the same
ConfigMap, and none needs to read it (RBAC: ``patch`` on that one ConfigMap, ``rbac.py``).

Where the URLs come from (:func:`arm_urls`, pure):

- Serverless: KServe's tag routing (the operator sets ``enable-tag-routing``) reports each
  revision's URL in ``status.components.predictor.traffic[]``: tag ``prev`` is the last
  rolled-out revision (stable), tag ``latest`` the newest ready one (the same data
  ``KServePlatform.metrics_endpoints`` reads). ``latest`` is the canary only once the
  revision created for the canary's spec is ready, so nothing is written before
  ``kserve_manifests.is_ready`` (KServe has observed the spec, the latest created revision
  is the latest ready one): until then ``latest`` would still be stable, and pairing would
  record stable's answer as the canary's.
- RawDeployment: each ``spec.canary[]`` entry runs as its own Deployment and Service named
  ``PredictorServiceName(isvc, canary.predictor.name)`` = ``<isvc>-<canary name>-predictor``
  (KServe ``pkg/constants/constants.go:802-807``,
  ``pkg/controller/v1beta1/inferenceservice/components/predictor.go:926``), port 80
  (``CommonDefaultHttpPort``, ``reconcilers/service/service_reconciler.go:119-121``);
  stable is ``<isvc>-predictor``. Written once ``status.canaryStatuses[]`` reports that
  canary ready (``predictor.go:955-970``). Commit aaac4e29.

Writing is best effort: pairing saves labels but decides nothing, so a missing ConfigMap
or a refused patch is logged (once per change of error) and never fails a tick.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

from modeldeploy.operator.api.status import VersionRef
from modeldeploy.operator.platforms import kserve_manifests as m
from modeldeploy.operator.platforms.base import Target
from modeldeploy.serving.contract.joiner import arms_entry, arms_key

log = logging.getLogger(__name__)

# A written key is written again after this long even if unchanged: a ConfigMap replaced by
# hand (or re-created) gets its keys back without an operator restart.
REFRESH_S = 300.0


def arm_urls(
    isvc: Mapping[str, Any] | None, target: Target, canary: VersionRef
) -> dict[str, str] | None:
    """``{"stable": url, "canary": url}`` once the canary serves at its own URL, else None."""
    if not isvc:
        return None
    spec = isvc.get("spec") or {}
    status = isvc.get("status") or {}
    if spec.get("canary"):  # RawDeployment
        name = m.canary_name(canary)
        ready = any(
            c.get("name") == name and c.get("ready") is True
            for c in status.get("canaryStatuses") or []
        )
        if not ready:
            return None
        ns = target.namespace
        return {
            "stable": f"http://{target.name}-predictor.{ns}.svc",
            "canary": f"http://{target.name}-{name}-predictor.{ns}.svc",
        }
    if "canaryTrafficPercent" not in (spec.get("predictor") or {}) or not m.is_ready(isvc):
        return None
    predictor = (status.get("components") or {}).get("predictor") or {}
    tagged = {
        str(t.get("tag")): str(t["url"]).rstrip("/")
        for t in predictor.get("traffic") or []
        if t.get("url") and t.get("tag") in ("prev", "latest")
    }
    if set(tagged) != {"prev", "latest"} or tagged["prev"] == tagged["latest"]:
        return None
    return {"stable": tagged["prev"], "canary": tagged["latest"]}


class ArmsConfigMap:
    """Merge-patches one key per deployment of the joiner's arms ConfigMap.

    Remembers what it last wrote per key (process memory, only to skip repeat writes: a
    restarted operator writes each key once more), so a tick costs no API call unless the
    arms changed or ``REFRESH_S`` passed.
    """

    def __init__(
        self,
        core_api: Any,
        where: str,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        namespace, _, name = where.partition("/")
        if not namespace or not name:
            raise ValueError(f"joiner arms ConfigMap {where!r}: expected <namespace>/<name>")
        self.api, self.namespace, self.name, self.clock = core_api, namespace, name, clock
        self._written: dict[str, tuple[str | None, float]] = {}
        self._errors: dict[str, str] = {}
        self._lock = threading.Lock()

    def publish(
        self,
        target: Target,
        stable: VersionRef,
        canary: VersionRef,
        urls: Mapping[str, str],
        probe: Mapping[str, Any] | None = None,
    ) -> None:
        """Write the deployment's arms (stable and canary URL and registry version), and
        the prober's ``probe`` block when it should probe (``operator/probing.py``)."""
        arms = {
            "stable": (urls["stable"], stable.version),
            "canary": (urls["canary"], canary.version),
        }
        value = arms_entry(target.name, target.spec.model.name, arms, probe)
        self._put(arms_key(target.namespace, target.name), value)

    def remove(self, target: Target) -> None:
        """Remove the deployment's key (the rollout ended); once per process per key."""
        self._put(arms_key(target.namespace, target.name), None)

    def _put(self, key: str, value: str | None) -> None:
        now = self.clock()
        with self._lock:
            last = self._written.get(key)
            if (
                last is not None
                and last[0] == value
                and (value is None or now - last[1] < REFRESH_S)
            ):
                return
        try:
            self.api.patch_namespaced_config_map(
                self.name,
                self.namespace,
                {"data": {key: value}},
                _content_type="application/merge-patch+json",
            )
        except Exception as exc:  # best effort: see the module docstring
            message = _reason(exc)
            if self._errors.get(key) != message:
                log.warning(
                    "joiner arms ConfigMap %s/%s, key %s not %s: %s (labels are not paired "
                    "on a cluster until this works)",
                    self.namespace,
                    self.name,
                    key,
                    "written" if value is not None else "removed",
                    message,
                )
            self._errors[key] = message
            return
        with self._lock:
            self._written[key] = (value, now)
            self._errors.pop(key, None)


def _reason(exc: Exception) -> str:
    status = getattr(exc, "status", None)
    if status is not None:
        return f"Kubernetes API answered {status} {getattr(exc, 'reason', '')}".strip()
    return f"{type(exc).__name__}: {exc}"
