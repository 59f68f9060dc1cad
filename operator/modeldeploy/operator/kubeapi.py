"""The one place the CLI talks to the Kubernetes API (through the official client).

The operator itself talks through kopf; the CLI needs only get and merge-patch of a
ModelDeployment, with API errors turned into a message a user can act on.
"""

from __future__ import annotations

import os
from typing import Any

from modeldeploy.operator.api.schema import GROUP, PLURAL, VERSION


class KubeError(Exception):
    """The API server refused or could not be reached; the message says which."""


def custom_objects() -> Any:
    """A CustomObjectsApi for the current kube context (in-cluster config as a fallback)."""
    import kubernetes

    # The client reads $KUBECONFIG once, when it is first imported; read it now instead.
    config_file = os.environ.get("KUBECONFIG") or None
    try:
        kubernetes.config.load_kube_config(config_file=config_file)
    except Exception as kube_exc:
        try:
            kubernetes.config.load_incluster_config()
        except Exception as exc:
            raise KubeError(
                f"no Kubernetes configuration found: kubeconfig: {kube_exc}; in-cluster: {exc}"
            ) from exc
    return kubernetes.client.CustomObjectsApi()


def _call(what: str, fn: Any, *args: Any, **kwargs: Any) -> dict[str, Any]:
    from kubernetes.client.exceptions import ApiException
    from urllib3.exceptions import HTTPError

    try:
        return dict(fn(*args, **kwargs))
    except ApiException as exc:
        if exc.status == 404:
            raise KubeError(f"{what} not found") from exc
        raise KubeError(f"{what}: Kubernetes API answered {exc.status} {exc.reason}") from exc
    except HTTPError as exc:
        raise KubeError(f"{what}: Kubernetes API unreachable: {exc}") from exc


def get_md(api: Any, namespace: str, name: str) -> dict[str, Any]:
    what = f"ModelDeployment {namespace}/{name}"
    return _call(what, api.get_namespaced_custom_object, GROUP, VERSION, namespace, PLURAL, name)


def patch_md(api: Any, namespace: str, name: str, patch: dict[str, Any]) -> dict[str, Any]:
    what = f"ModelDeployment {namespace}/{name}"
    return _call(
        what, api.patch_namespaced_custom_object, GROUP, VERSION, namespace, PLURAL, name, patch
    )
