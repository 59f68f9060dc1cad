"""The one place that loads a Kubernetes client configuration, and the CLI's API calls.

Precedence (the operator, its kopf login and the ``modeldeploy rollout`` CLI all use
:func:`load_configuration`): the in-cluster service account when running in a pod
(``KUBERNETES_SERVICE_HOST`` set), else the kubeconfig file given (``--kubeconfig``, or
``$KUBECONFIG`` read at call time), else ``~/.kube/config``. Each call builds its own
``Configuration``: nothing is written to the kubernetes client's process-wide default.
"""

from __future__ import annotations

import os
from typing import Any

from modeldeploy.operator.api.schema import GROUP, PLURAL, VERSION


class KubeError(Exception):
    """The API server refused or could not be reached; the message says which."""


def load_configuration(kubeconfig: str | None = None) -> Any:
    """A ``kubernetes.client.Configuration``: in-cluster, else the kubeconfig file."""
    import kubernetes

    config = kubernetes.client.Configuration()
    if os.environ.get("KUBERNETES_SERVICE_HOST"):
        try:
            kubernetes.config.load_incluster_config(client_configuration=config)
            return config
        except kubernetes.config.ConfigException as exc:
            in_cluster = f"in-cluster: {exc}; "
    else:
        in_cluster = "in-cluster: not in a pod; "
    # The client reads $KUBECONFIG once, when it is first imported; read it now instead.
    config_file = kubeconfig or os.environ.get("KUBECONFIG") or None
    try:
        kubernetes.config.load_kube_config(config_file=config_file, client_configuration=config)
    except Exception as exc:
        raise KubeError(
            f"no Kubernetes configuration found: {in_cluster}kubeconfig: {exc}"
        ) from exc
    return config


def custom_objects(kubeconfig: str | None = None) -> Any:
    """A CustomObjectsApi configured by :func:`load_configuration`."""
    import kubernetes

    client = kubernetes.client.ApiClient(load_configuration(kubeconfig))
    return kubernetes.client.CustomObjectsApi(client)


def connection_info(config: Any) -> Any:
    """``config`` as kopf's ``ConnectionInfo``, so kopf logs in where our client does."""
    import kopf

    header = config.get_api_key_with_prefix("BearerToken") or config.get_api_key_with_prefix(
        "authorization"
    )
    parts = header.split(" ", 1) if header else []
    scheme, token = (None, None) if not parts else (None, parts[0]) if len(parts) == 1 else parts
    return kopf.ConnectionInfo(
        server=config.host,
        ca_path=config.ssl_ca_cert,
        insecure=not config.verify_ssl,
        username=config.username or None,
        password=config.password or None,
        scheme=scheme,
        token=token,
        certificate_path=config.cert_file,
        private_key_path=config.key_file,
    )


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
