"""The kopf startup hook: settings, the platform, the registry, the metrics, the webhooks."""

from __future__ import annotations

import asyncio
from typing import Any

import kopf

from modeldeploy.operator import reconcile
from modeldeploy.operator.handlers.lifecycle import STATE, configure
from modeldeploy.operator.handlers.registry_events import RegistryEvents
from modeldeploy.operator.observer import MetricsWindows, default_provider_for
from modeldeploy.operator.platforms.factory import make_platform
from modeldeploy.operator.settings import OperatorSettings


def _registry_for(default_uri: str) -> Any:
    clients: dict[str, Any] = {}

    def get(uri: str) -> Any:
        from modeldeploy.registry.mlflow_client import MlflowRegistry

        uri = uri or default_uri
        if uri not in clients:
            clients[uri] = MlflowRegistry(uri)
        return clients[uri]

    return get


def _kube_api(kubeconfig: str) -> Any:
    """A CustomObjectsApi from the in-cluster config, else the kubeconfig (None: neither)."""
    import kubernetes

    try:
        kubernetes.config.load_incluster_config()
    except kubernetes.config.ConfigException:
        try:
            kubernetes.config.load_kube_config(config_file=kubeconfig or None)
        except Exception:
            return None
    return kubernetes.client.CustomObjectsApi()


@kopf.on.startup()
async def startup(settings: kopf.OperatorSettings, **_: Any) -> None:
    ours = OperatorSettings.from_env()
    settings.persistence.finalizer = "modeldeploy.io/finalizer"
    settings.posting.level = 20  # INFO: our transition events go to the object
    # Peering (name, mandatory, standalone) is left as ``operator run`` set it: overriding it
    # here would ignore ``--peering NAME`` and let two replicas act when the CRD is missing.
    api = await asyncio.to_thread(_kube_api, ours.kubeconfig)
    if api is None and ours.rollout.platform == "kserve":
        raise kopf.PermanentError("no Kubernetes configuration for the kserve platform")
    if ours.metrics_port:
        from prometheus_client import start_http_server

        start_http_server(ours.metrics_port)
    platform = make_platform(ours.rollout.platform, api=api)
    registry = _registry_for(ours.registry.default_uri)
    events = None
    if ours.registry.watch_seconds > 0 and api is not None:
        loop = asyncio.get_running_loop()
        events = RegistryEvents(loop, registry, api, ours.registry.watch_seconds)
    deps = reconcile.Deps(
        platform=platform,
        registry_for=lambda spec: registry(spec.model.registry_uri),
        emit=lambda kind, reason, message: None,
        default_registry_uri=ours.registry.default_uri,
        windows=MetricsWindows(default_provider_for(platform.metrics_endpoints)),
    )
    configure(deps, ours, events)
    if ours.registry.webhook_port and events is not None:
        STATE["webhooks"] = await _serve_webhooks(ours, events)


async def _serve_webhooks(ours: OperatorSettings, events: RegistryEvents) -> Any:
    from aiohttp import web

    from modeldeploy.registry.webhooks import WebhookReceiver

    receiver = WebhookReceiver(
        ours.registry.webhook_secret, lambda event: events.nudge(event.model)
    )
    runner = web.AppRunner(receiver.app())
    await runner.setup()
    await web.TCPSite(runner, ours.registry.webhook_host, ours.registry.webhook_port).start()
    return runner


@kopf.on.cleanup()
async def cleanup(**_: Any) -> None:
    events, runner = STATE.get("events"), STATE.pop("webhooks", None)
    if events is not None:
        await events.close()
    if runner is not None:
        await runner.cleanup()
