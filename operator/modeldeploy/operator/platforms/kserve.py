"""The KServe platform: writes InferenceServices and reads their status.

All shaping is in ``kserve_manifests`` (pure); this module only gets, creates and
replaces objects through an injected ``CustomObjectsApi``, and maps API errors to
``PlatformError`` (409/5xx/unreachable are transient, the rest are not).
"""

from __future__ import annotations

from typing import Any

from modeldeploy.operator.api.status import VersionRef
from modeldeploy.operator.platforms import kserve_manifests as m
from modeldeploy.operator.platforms.base import PlatformError, Target

GROUP, VERSION, PLURAL = "serving.kserve.io", "v1beta1", "inferenceservices"


class KServePlatform:
    def __init__(self, api: Any) -> None:
        self.api = api  # kubernetes.client.CustomObjectsApi

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
        if current.get("spec") == body["spec"] and _same_meta(current, body):
            return  # nothing to change: no new revision
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
        self._apply(target, m.inference_service(target, stable))

    def set_canary(
        self, target: Target, stable: VersionRef, canary: VersionRef, weight: int
    ) -> None:
        self._apply(target, m.inference_service(target, stable, canary, weight))

    def set_traffic(
        self, target: Target, stable: VersionRef, canary: VersionRef, weight: int
    ) -> None:
        self._apply(target, m.inference_service(target, stable, canary, weight))

    def read_traffic(self, target: Target) -> int | None:
        return m.canary_traffic(self._get(target))

    def is_ready(self, target: Target) -> bool:
        return m.is_ready(self._get(target))

    def metrics_endpoints(self, target: Target) -> list[str]:
        """The ``/metrics`` URLs of the served revisions, from the status' tagged traffic.

        Tag routing gives each revision its own URL; with one replica per revision this
        reaches every process (Prometheus is the provider for scaled-out predictors).
        """
        status = (self._get(target) or {}).get("status") or {}
        traffic = ((status.get("components") or {}).get("predictor") or {}).get("traffic") or []
        urls = [str(t["url"]).rstrip("/") + "/metrics" for t in traffic if t.get("url")]
        return sorted(set(urls))

    def promote(self, target: Target, ref: VersionRef) -> None:
        self._apply(target, m.inference_service(target, ref))

    def clean_up(self, target: Target) -> None:
        from kubernetes.client.exceptions import ApiException

        try:
            self.api.delete_namespaced_custom_object(
                GROUP, VERSION, target.namespace, PLURAL, target.name
            )
        except ApiException as exc:
            if exc.status != 404:
                raise PlatformError(f"KServe: {exc.status} {exc.reason}") from exc


def _same_meta(current: dict[str, Any], body: dict[str, Any]) -> bool:
    cur, new = current.get("metadata") or {}, body["metadata"]
    return all((cur.get(k) or {}) == new.get(k, {}) for k in ("labels", "annotations"))
