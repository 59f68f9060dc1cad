"""Registry changes wake the rollout daemons now, and feed the ticks' alias cache.

One ``RegistryWatcher`` per registry URI polls the models the ModelDeployments use (and
is nudged by the webhook receiver): one poll per model per interval, however many
ModelDeployments follow it. Every poll refreshes that model's entry in the shared
``registry_port.AliasCache`` the ticks read (so their registry reads grow with models,
not with ModelDeployments), and a change then wakes the daemon of each ModelDeployment
of that model (an in-memory event, see ``wakeup.py``): nothing is written to the
resource. The model -> resources map is only a hint rebuilt by every tick; an entry the
watcher stops refreshing goes stale, and the ticks read the registry themselves.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable
from typing import Any

from modeldeploy.operator.registry_port import AliasCache, Entry

log = logging.getLogger(__name__)

Wake = Callable[[str, str], None]  # (namespace, name), called on the loop's thread
# With many followed models, each is still read in full once in this many polls (5 minutes
# at 10 s). The ticks need aliases (in the listing every poll) and the aliased versions'
# source and manifest digest, which are written when a version is published and do not
# change after; a webhook (model_version_tag.set) still nudges a poll at once.
FULL_EVERY = 30


class RegistryEvents:
    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        client_for: Callable[[str], Any],
        wake: Wake,
        interval: float,
        cache: AliasCache | None = None,
    ) -> None:
        self.loop, self.client_for, self.wake, self.interval = loop, client_for, wake, interval
        self.cache = cache
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
                settings = WatchSettings(interval=self.interval, full_every=FULL_EVERY)
                watcher = self.watchers[uri] = RegistryWatcher(
                    self.client_for(uri), [], settings=settings
                )
                self.loop.call_soon_threadsafe(self._start, uri, watcher)
        if model not in watcher.models:
            watcher.watch(model)

    def _start(self, uri: str, watcher: Any) -> None:
        task = self.loop.create_task(
            watcher.run(
                lambda changes: self._changed(uri, changes),
                self.stop,
                on_poll=lambda result: self._polled(uri, result),
            )
        )
        self.tasks.add(task)

    def nudge(self, model: str) -> None:
        """A webhook said ``model`` changed: poll it now wherever it is watched."""
        for watcher in list(self.watchers.values()):
            if model in watcher.models:
                watcher.nudge(model)

    def _polled(self, uri: str, result: Any) -> None:
        """Every model this poll read, as the ticks' cache entry (before anyone is woken)."""
        if self.cache is None:
            return
        at = self.cache.clock()
        for model, state in result.states.items():
            if model in result.unchanged:  # the registry's listing showed it as it was
                self.cache.touch(uri, model, at)
                continue
            aliased = result.aliased.get(model, {})
            self.cache.put(uri, model, Entry.of(state.exists, state.aliases, aliased, at))

    def _changed(self, uri: str, changes: list[Any]) -> None:
        with self._lock:
            keys = {k for c in changes for k in self.users.get((uri, c.model), set())}
        for namespace, name in sorted(keys):
            self.wake(namespace, name)

    async def close(self) -> None:
        self.stop.set()
        if self.tasks:
            await asyncio.wait(self.tasks, timeout=5)
