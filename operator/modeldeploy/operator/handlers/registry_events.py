"""Registry changes trigger an immediate reconcile; polling on each tick stays the truth.

One ``RegistryWatcher`` per registry URI polls the models the ModelDeployments use (and
is nudged by the webhook receiver). A change pokes each ModelDeployment of that model by
setting the ``modeldeploy.io/registry-changed`` annotation, which kopf's annotation update
handler turns into a tick. The model -> resources map is only a hint rebuilt by every tick.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from modeldeploy.operator.api.schema import GROUP, PLURAL, VERSION

log = logging.getLogger(__name__)
CHANGED = "modeldeploy.io/registry-changed"


class RegistryEvents:
    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        client_for: Callable[[str], Any],
        api: Any,
        interval: float,
    ) -> None:
        self.loop, self.client_for, self.api, self.interval = loop, client_for, api, interval
        self.watchers: dict[str, Any] = {}
        self.users: dict[tuple[str, str], set[tuple[str, str]]] = {}  # (uri, model) -> md keys
        self.tasks: set[asyncio.Task[Any]] = set()
        self.stop = asyncio.Event()
        self._lock = threading.Lock()

    def seen(self, uri: str, model: str, namespace: str, name: str) -> None:
        """A tick of ``namespace/name`` read ``model`` from ``uri`` (thread-safe)."""
        from modeldeploy.registry.watcher import RegistryWatcher, WatchSettings

        with self._lock:
            self.users.setdefault((uri, model), set()).add((namespace, name))
            watcher = self.watchers.get(uri)
            if watcher is None:
                settings = WatchSettings(interval=self.interval)
                watcher = self.watchers[uri] = RegistryWatcher(
                    self.client_for(uri), [], settings=settings
                )
                self.loop.call_soon_threadsafe(self._start, uri, watcher)
        if model not in watcher.models:
            watcher.watch(model)

    def _start(self, uri: str, watcher: Any) -> None:
        task = self.loop.create_task(
            watcher.run(lambda changes: self._changed(uri, changes), self.stop)
        )
        self.tasks.add(task)

    def nudge(self, model: str) -> None:
        """A webhook said ``model`` changed: poll it now wherever it is watched."""
        for watcher in list(self.watchers.values()):
            if model in watcher.models:
                watcher.nudge(model)

    async def _changed(self, uri: str, changes: list[Any]) -> None:
        stamp = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        body = {"metadata": {"annotations": {CHANGED: stamp}}}
        keys = {k for c in changes for k in self.users.get((uri, c.model), set())}
        for namespace, name in sorted(keys):
            try:
                await asyncio.to_thread(
                    self.api.patch_namespaced_custom_object,
                    GROUP,
                    VERSION,
                    namespace,
                    PLURAL,
                    name,
                    body,
                )
            except Exception as exc:  # a lost poke only delays the next tick
                log.warning(
                    "could not poke %s/%s after a registry change: %s", namespace, name, exc
                )

    async def close(self) -> None:
        self.stop.set()
        if self.tasks:
            await asyncio.wait(self.tasks, timeout=5)
