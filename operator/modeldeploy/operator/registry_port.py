"""The operator's view of the registry: where the aliases point, and decision records.

Reads go through the registry's ``RegistryClient`` protocol (MLflow, or the in-memory fake
in tests); decisions go through ``modeldeploy.registry.decisions``, which is idempotent,
so a repeated tick after a crash never records a promotion twice.

At scale the reads come from an ``AliasCache``: one bounded entry per (registry URI,
model), fed by the registry watcher's polls (``handlers/registry_events.py``), so a
thousand ModelDeployments of one model cost the registry one poll per interval rather
than two calls per tick each. The cache is only a cache: an entry older than ``max_age``
is read from the registry by the tick itself (a dead watcher never freezes a decision),
and a decision is planned on fresh reads and drops the entry it changed.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

from modeldeploy.operator.api.status import VersionRef
from modeldeploy.operator.api.types import ModelDeploymentSpec
from modeldeploy.operator.rollout.machine import RegistryState
from modeldeploy.registry import decisions
from modeldeploy.registry.base import (
    TAG_MANIFEST_SHA256,
    ModelVersionInfo,
    NotFound,
    RegisteredModelInfo,
    RegistryClient,
    RegistryUnavailable,
    WebhookInfo,
)


def _ref(client: RegistryClient, model: str, version: str | None) -> VersionRef | None:
    if not version:
        return None
    info = client.get_version(model, version)
    return VersionRef(str(info.version), info.tags.get(TAG_MANIFEST_SHA256, ""), info.source)


def read_state(client: RegistryClient, spec: ModelDeploymentSpec) -> RegistryState:
    """Where the stable and candidate aliases point; ``available=False`` if unreachable."""
    name = spec.model.name
    try:
        aliases = client.get_model(name).aliases
        stable = _ref(client, name, aliases.get(spec.model.stable_alias))
        candidate = _ref(client, name, aliases.get(spec.model.candidate_alias))
    except NotFound:
        return RegistryState(available=True)
    except RegistryUnavailable:
        return RegistryState(available=False)
    return RegistryState(available=True, stable=stable, candidate=candidate)


def _names(spec: ModelDeploymentSpec) -> decisions.AliasNames:
    return decisions.AliasNames(
        stable=spec.model.stable_alias, candidate=spec.model.candidate_alias
    )


def promote(client: RegistryClient, spec: ModelDeploymentSpec, version: str, reason: str) -> None:
    try:
        decisions.promote(direct(client), spec.model.name, version, reason, names=_names(spec))
    finally:
        _invalidate(client, spec.model.name)


def reject(client: RegistryClient, spec: ModelDeploymentSpec, version: str, reason: str) -> None:
    try:
        decisions.reject(direct(client), spec.model.name, version, reason, names=_names(spec))
    finally:
        _invalidate(client, spec.model.name)


def direct(client: RegistryClient) -> RegistryClient:
    """The registry itself, past any cache: what a decision is planned on."""
    return client.inner if isinstance(client, CachedRegistry) else client


def _invalidate(client: RegistryClient, model: str) -> None:
    if isinstance(client, CachedRegistry):
        client.cache.invalidate(client.uri, model)


# -- the shared alias cache ----------------------------------------------------------------


@dataclass(frozen=True)
class Entry:
    """What the registry said about one model: its aliases and the aliased versions."""

    exists: bool
    aliases: Mapping[str, str] = field(default_factory=dict)  # alias -> version
    versions: Mapping[str, ModelVersionInfo] = field(default_factory=dict)  # aliased only
    at: float = 0.0  # monotonic seconds when it was read

    @classmethod
    def of(
        cls,
        exists: bool,
        aliases: Mapping[str, str],
        versions: Mapping[str, ModelVersionInfo],
        at: float,
    ) -> Entry:
        """Keep only the versions an alias points at: all a tick reads, and bounded."""
        wanted = set(aliases.values())
        kept = {v: info for v, info in versions.items() if v in wanted}
        return cls(exists, dict(aliases), kept, at)


Clock = Callable[[], float]


class AliasCache:
    """Bounded (least recently used) alias state per (registry URI, model); thread-safe.

    ``put`` is the watcher's feed; ``fresh`` answers only while an entry is younger than
    ``max_age``; ``load`` reads a missing or stale entry through ``read`` once, however
    many ticks ask for it at the same moment (the others wait and share the answer).
    """

    def __init__(self, max_age: float, max_entries: int = 1024, clock: Clock = time.monotonic):
        self.max_age, self.max_entries, self.clock = max_age, max_entries, clock
        self._entries: OrderedDict[tuple[str, str], Entry] = OrderedDict()
        self._lock = threading.Lock()
        self._loading: dict[tuple[str, str], threading.Lock] = {}
        self.read_through = 0  # entries the ticks had to read themselves

    def __len__(self) -> int:
        return len(self._entries)

    def put(self, uri: str, model: str, entry: Entry) -> None:
        with self._lock:
            key = (uri, model)
            self._entries[key] = entry
            self._entries.move_to_end(key)
            while len(self._entries) > self.max_entries:
                self._entries.popitem(last=False)

    def touch(self, uri: str, model: str, at: float) -> None:
        """The registry says nothing changed: the entry (if any) is as good as new at ``at``."""
        with self._lock:
            entry = self._entries.get((uri, model))
            if entry is not None and entry.at < at:
                self._entries[(uri, model)] = replace(entry, at=at)

    def invalidate(self, uri: str, model: str) -> None:
        with self._lock:
            self._entries.pop((uri, model), None)

    def fresh(self, uri: str, model: str) -> Entry | None:
        with self._lock:
            entry = self._entries.get((uri, model))
            if entry is None or self.clock() - entry.at > self.max_age:
                return None
            self._entries.move_to_end((uri, model))
            return entry

    def load(self, uri: str, model: str, read: Callable[[], Entry]) -> Entry:
        """The fresh entry, else ``read()`` it (once for all concurrent callers) and keep it."""
        entry = self.fresh(uri, model)
        if entry is not None:
            return entry
        with self._lock:
            gate = self._loading.setdefault((uri, model), threading.Lock())
        try:
            with gate:
                entry = self.fresh(uri, model)  # another caller may have read it meanwhile
                if entry is None:
                    entry = read()
                    self.read_through += 1
                    self.put(uri, model, entry)
        finally:
            with self._lock:
                self._loading.pop((uri, model), None)
        return entry

    def client(self, uri: str, inner: RegistryClient) -> CachedRegistry:
        return CachedRegistry(inner, uri, self)


class CachedRegistry:
    """A ``RegistryClient`` whose alias reads come from an ``AliasCache``.

    ``get_model`` and ``get_version`` of an aliased version are served from the cache;
    everything else goes to the registry, and every write drops the model's entry.
    """

    def __init__(self, inner: RegistryClient, uri: str, cache: AliasCache) -> None:
        self.inner, self.uri, self.cache = inner, uri, cache

    def __repr__(self) -> str:
        return f"CachedRegistry({self.inner!r})"

    def _read(self, name: str) -> Entry:
        at = self.cache.clock()
        try:
            aliases = dict(self.inner.get_model(name).aliases)
        except NotFound:
            return Entry(exists=False, at=at)
        versions: dict[str, ModelVersionInfo] = {}
        for version in sorted(set(aliases.values())):
            try:
                versions[version] = self.inner.get_version(name, version)
            except NotFound:
                continue  # an alias to a deleted version: reading it says NotFound again
        return Entry.of(True, aliases, versions, at)

    def _entry(self, name: str) -> Entry:
        return self.cache.load(self.uri, name, lambda: self._read(name))

    # -- reads ----------------------------------------------------------------------------
    def is_online(self) -> bool:
        return self.inner.is_online()

    def list_models(self) -> list[RegisteredModelInfo]:
        return self.inner.list_models()

    def get_model(self, name: str) -> RegisteredModelInfo:
        entry = self._entry(name)
        if not entry.exists:
            raise NotFound(f"model {name!r} not found")
        return RegisteredModelInfo(name=name, aliases=dict(entry.aliases))

    def get_version(self, name: str, version: str) -> ModelVersionInfo:
        info = self._entry(name).versions.get(str(version))
        return info if info is not None else self.inner.get_version(name, version)

    def search_versions(
        self, name: str, *, max_results: int, page_token: str | None = None
    ) -> tuple[list[ModelVersionInfo], str | None]:
        return self.inner.search_versions(name, max_results=max_results, page_token=page_token)

    def download_version(self, name: str, version: str, dst_dir: Path) -> Path:
        return self.inner.download_version(name, version, dst_dir)

    def list_webhooks(self) -> list[WebhookInfo]:
        return self.inner.list_webhooks()

    # -- writes: to the registry, and the entry goes --------------------------------------
    def create_version(
        self, name: str, local_dir: Path, *, tags: Mapping[str, str], description: str = ""
    ) -> ModelVersionInfo:
        try:
            return self.inner.create_version(name, local_dir, tags=tags, description=description)
        finally:
            self.cache.invalidate(self.uri, name)

    def set_alias(self, name: str, alias: str, version: str) -> None:
        try:
            self.inner.set_alias(name, alias, version)
        finally:
            self.cache.invalidate(self.uri, name)

    def delete_alias(self, name: str, alias: str) -> None:
        try:
            self.inner.delete_alias(name, alias)
        finally:
            self.cache.invalidate(self.uri, name)

    def set_version_tag(self, name: str, version: str, key: str, value: str) -> None:
        try:
            self.inner.set_version_tag(name, version, key, value)
        finally:
            self.cache.invalidate(self.uri, name)

    def create_webhook(
        self, name: str, url: str, events: Sequence[str], secret: str | None
    ) -> WebhookInfo:
        return self.inner.create_webhook(name, url, events, secret)

    def update_webhook(
        self, webhook_id: str, url: str, events: Sequence[str], secret: str | None
    ) -> WebhookInfo:
        return self.inner.update_webhook(webhook_id, url, events, secret)
