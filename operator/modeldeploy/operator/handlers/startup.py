"""The kopf startup hook: settings, clients, the platform, the registry, metrics, webhooks.

Everything the handlers use is built here once and kept in kopf's ``memo`` (copied into
each object's daemon): ``settings``, ``kube`` (a CustomObjectsApi), ``deps``
(``reconcile.Deps``), ``wakers`` and ``events`` (the registry watcher, or None).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import kopf

from modeldeploy.operator import kubeapi, reconcile
from modeldeploy.operator.handlers.registry_events import RegistryEvents
from modeldeploy.operator.handlers.wakeup import Wakers
from modeldeploy.operator.observer import MetricsWindows, default_provider_for
from modeldeploy.operator.platforms.factory import make_platform
from modeldeploy.operator.registry_port import AliasCache
from modeldeploy.operator.settings import OperatorSettings, apply_mlflow_client_env
from modeldeploy.registry.rest_client import operator_registry

# An alias cache entry is trusted for this many watcher intervals; after that a tick reads
# the registry itself (the watcher is dead, or backing off while MLflow is down).
CACHE_MAX_AGE_POLLS = 3


def _registry_for(default_uri: str) -> Callable[[str], Any]:
    clients: dict[str, Any] = {}

    def get(uri: str) -> Any:
        uri = uri or default_uri
        if uri not in clients:
            clients[uri] = operator_registry(uri)  # REST: the operator never imports mlflow
        return clients[uri]

    return get


def _cached(
    direct: Callable[[str], Any], cache: AliasCache, default_uri: str
) -> Callable[[str], Any]:
    """The ticks' clients: ``direct``'s, with alias reads through the shared ``cache``."""
    clients: dict[str, Any] = {}

    def get(uri: str) -> Any:
        uri = uri or default_uri
        if uri not in clients:
            clients[uri] = cache.client(uri, direct(uri))
        return clients[uri]

    return get


def _kubeconfig(memo: Any, ours: OperatorSettings) -> str | None:
    """``--kubeconfig`` (handed over by runner.py in the memo), else the settings' one."""
    return getattr(memo, "kubeconfig", "") or ours.kubeconfig or None


@kopf.on.login()
def login(memo: Any, **_: Any) -> kopf.ConnectionInfo | None:
    """kopf logs in with the same configuration as our own client (``kubeapi``)."""
    try:
        ours = getattr(memo, "settings", None) or OperatorSettings.from_env()
        config = kubeapi.load_configuration(_kubeconfig(memo, ours))
    except kubeapi.KubeError:
        return None  # kopf reports that no login handler gave credentials
    return kubeapi.connection_info(config)


@kopf.on.startup()
async def startup(settings: kopf.OperatorSettings, memo: Any, **_: Any) -> None:
    ours = OperatorSettings.from_env()
    apply_mlflow_client_env(ours.registry)  # before any MLflow client call
    settings.persistence.finalizer = "modeldeploy.io/finalizer"
    settings.posting.level = 20  # INFO: our transition events go to the object
    settings.peering.lifetime = ours.peering.lifetime_seconds
    # Peering (name, mandatory, standalone, priority) is left as ``operator run`` set it:
    # overriding it here would ignore ``--peering NAME`` and let two replicas act when the
    # CRD is missing.
    kube = await asyncio.to_thread(kubeapi.custom_objects, _kubeconfig(memo, ours))
    if ours.metrics_port:
        from prometheus_client import start_http_server

        start_http_server(ours.metrics_port)
    platform = make_platform(ours.rollout.platform, api=kube)
    loop = asyncio.get_running_loop()
    wakers = Wakers(loop)
    events, watch = None, ours.registry.watch_seconds
    direct = _registry_for(ours.registry.default_uri)  # the watcher's: never cached
    registry = direct
    if watch > 0:
        cache = AliasCache(max_age=CACHE_MAX_AGE_POLLS * watch)
        registry = _cached(direct, cache, ours.registry.default_uri)
        events = RegistryEvents(loop, direct, wakers.wake, watch, cache=cache)
    memo.settings, memo.kube, memo.wakers, memo.events = ours, kube, wakers, events
    memo.deps = reconcile.Deps(
        platform=platform,
        registry_for=lambda spec: registry(spec.model.registry_uri),
        windows=MetricsWindows(default_provider_for(platform.metrics_endpoints)),
        emit=lambda kind, reason, message: None,  # each tick collects its own
        default_registry_uri=ours.registry.default_uri,
        default_cpu_core_hour=ours.cpu_core_hour or None,
        default_gpu_hour=ours.gpu_hour or None,
    )
    memo.webhooks = None
    if ours.registry.webhook_port and events is not None:
        memo.webhooks = await _serve_webhooks(ours, events)


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
async def cleanup(memo: Any, **_: Any) -> None:
    events, runner = getattr(memo, "events", None), getattr(memo, "webhooks", None)
    if events is not None:
        await events.close()
    if runner is not None:
        await runner.cleanup()
