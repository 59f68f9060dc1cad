"""Watch a set of registered models and report what changed, as typed changes.

Polling is the source of truth; webhooks only make a poll happen sooner (``nudge``).
Each poll of one model costs a fixed number of calls, whatever its history:
``get_model`` for the aliases (``search_model_versions`` returns none), one page of the
newest versions, and ``get_version`` for any aliased version outside that page. More
pages are read only to cover versions created since the last poll, so no new version is
skipped after an outage either. With many watched models (``WatchSettings.sweep_from``) a
full poll first lists the registered models (their aliases and update times, a page per
~200) and reads in full only those whose aliases or update time moved, plus each model at
least every ``full_every`` polls (a tag change shows in neither): the cost of a quiet
registry is the listing, and grows with the models that changed.

The snapshot of what was seen is plain data (``Snapshot.to_json``) so the operator can
persist it; a change is only dropped from view once the handler has taken it (the
snapshot is committed after ``on_changes`` returns), which is why a change made while
MLflow was down, or while the operator was restarting, is still reported afterwards.
When MLflow is unreachable the watcher reports the ``unavailable`` state, backs off
exponentially, and recovers by itself; it never raises out of ``run``.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import logging
import threading
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from enum import StrEnum

from modeldeploy.registry.base import (
    ChangeKind,
    ModelVersionInfo,
    NotFound,
    RegisteredModelInfo,
    RegistryChange,
    RegistryClient,
    RegistryError,
    RegistryUnavailable,
)
from modeldeploy.registry.metrics import WATCHER_UP

log = logging.getLogger(__name__)

SNAPSHOT_FORMAT = 1


@dataclass(frozen=True)
class ModelState:
    """What one poll saw of one registered model."""

    exists: bool = False
    aliases: Mapping[str, str] = field(default_factory=dict)  # alias -> version
    versions: Mapping[str, Mapping[str, str]] = field(default_factory=dict)  # version -> tags
    max_version: int = 0  # highest version number ever seen: new versions are above it


@dataclass(frozen=True)
class Snapshot:
    """The watcher's memory, serialisable so it survives an operator restart."""

    models: Mapping[str, ModelState] = field(default_factory=dict)

    def to_json(self) -> str:
        return json.dumps(
            {
                "format": SNAPSHOT_FORMAT,
                "models": {
                    name: {
                        "exists": st.exists,
                        "aliases": dict(st.aliases),
                        "versions": {v: dict(t) for v, t in st.versions.items()},
                        "max_version": st.max_version,
                    }
                    for name, st in sorted(self.models.items())
                },
            },
            sort_keys=True,
        )

    @classmethod
    def from_json(cls, text: str) -> Snapshot:
        data = json.loads(text)
        if data.get("format") != SNAPSHOT_FORMAT:
            raise ValueError(f"unsupported watcher snapshot format {data.get('format')!r}")
        return cls(
            models={
                name: ModelState(
                    exists=bool(st["exists"]),
                    aliases={str(k): str(v) for k, v in st["aliases"].items()},
                    versions={
                        str(v): {str(k): str(x) for k, x in tags.items()}
                        for v, tags in st["versions"].items()
                    },
                    max_version=int(st["max_version"]),
                )
                for name, st in data["models"].items()
            }
        )


# -- pure logic --------------------------------------------------------------------------


def diff_model(model: str, old: ModelState | None, new: ModelState) -> list[RegistryChange]:
    """Typed changes between two states of one model (pure).

    A version is "created" when its number is above the highest number seen before;
    an older version that merely enters the tracked set (for example because an alias
    now points at it) is not reported as new, and its tags become the baseline.
    """
    old = old or ModelState()
    changes: list[RegistryChange] = []
    for version in sorted(new.versions, key=int):
        tags = new.versions[version]
        if version not in old.versions:
            if int(version) > old.max_version:
                changes.append(RegistryChange(ChangeKind.VERSION_CREATED, model, version))
            continue
        before = old.versions[version]
        for key in sorted(tags):
            if before.get(key) != tags[key]:
                changes.append(
                    RegistryChange(
                        ChangeKind.TAG_SET,
                        model,
                        version,
                        key=key,
                        value=tags[key],
                        previous_value=before.get(key),
                    )
                )
        for key in sorted(set(before) - set(tags)):
            changes.append(
                RegistryChange(
                    ChangeKind.TAG_REMOVED, model, version, key=key, previous_value=before[key]
                )
            )
    for alias in sorted(set(old.aliases) | set(new.aliases)):
        was, now = old.aliases.get(alias), new.aliases.get(alias)
        if was == now:
            continue
        if was is None:
            changes.append(RegistryChange(ChangeKind.ALIAS_SET, model, now, alias=alias))
        elif now is None:
            changes.append(
                RegistryChange(ChangeKind.ALIAS_REMOVED, model, None, alias, previous_version=was)
            )
        else:
            changes.append(
                RegistryChange(ChangeKind.ALIAS_MOVED, model, now, alias, previous_version=was)
            )
    return changes


def backoff_delay(failures: int, interval: float, base: float, cap: float) -> float:
    """Seconds to the next poll: the interval when healthy, else base * 2^(n-1), capped."""
    if failures <= 0:
        return interval
    return min(cap, base * (2 ** (failures - 1)))


# -- state and results -------------------------------------------------------------------


class WatchState(StrEnum):
    STARTING = "starting"
    READY = "ready"
    UNAVAILABLE = "unavailable"  # MLflow unreachable: backing off, will recover by itself


@dataclass(frozen=True)
class WatcherStatus:
    state: WatchState = WatchState.STARTING
    failures: int = 0  # consecutive polls that could not reach the registry
    last_error: str | None = None
    last_success: float | None = None  # wall-clock seconds
    next_delay: float = 0.0

    def describe(self) -> str:
        if self.state is WatchState.UNAVAILABLE:
            return (
                f"registry unavailable ({self.failures} failed polls, retry in "
                f"{self.next_delay:.1f}s): {self.last_error}"
            )
        return self.state.value


@dataclass(frozen=True)
class PollResult:
    changes: tuple[RegistryChange, ...]
    states: Mapping[str, ModelState]  # only the models polled successfully
    status: WatcherStatus
    # model -> version -> what this poll read of each aliased version (source included):
    # what a cache of alias state needs, kept out of the snapshot.
    aliased: Mapping[str, Mapping[str, ModelVersionInfo]] = field(default_factory=dict)
    # A sweep's models found unchanged by the listing (their state is the old one), and the
    # listed update time of each model read in full.
    unchanged: frozenset[str] = frozenset()
    listed: Mapping[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class WatchSettings:
    interval: float = 10.0  # seconds between full polls when healthy
    window: int = 20  # newest versions tracked per model (plus every aliased version)
    backoff_base: float = 1.0
    backoff_cap: float = 60.0
    # With this many watched models or more, a full poll starts with one listing of the
    # registered models (aliases and update times, ~200 a page) and reads in full only
    # those that changed: the cost grows with changed models, not with watched ones.
    sweep_from: int = 8
    # A tag set on a version moves neither an alias nor the model's update time, so every
    # model is still read in full at least once in this many polls (webhooks come sooner).
    full_every: int = 6


OnChanges = Callable[[list[RegistryChange]], Awaitable[object] | object]
OnPoll = Callable[[PollResult], object]


class RegistryWatcher:
    """Polls a set of models; see the module docstring for the guarantees."""

    def __init__(
        self,
        client: RegistryClient,
        models: Iterable[str],
        *,
        settings: WatchSettings | None = None,
        snapshot: Snapshot | None = None,
    ) -> None:
        self.client = client
        self.settings = settings or WatchSettings()
        self._models: set[str] = set(models)
        self._snapshot = snapshot or Snapshot()
        self._status = WatcherStatus(next_delay=0.0)
        self._nudged: set[str] = set()
        self._listed: dict[str, int] = {}  # model -> its update time when last read in full
        self._skipped: dict[str, int] = {}  # model -> sweeps in a row that did not read it
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._wake: asyncio.Event | None = None

    # -- membership and state ---------------------------------------------------------
    @property
    def models(self) -> frozenset[str]:
        with self._lock:
            return frozenset(self._models)

    def watch(self, model: str) -> None:
        with self._lock:
            self._models.add(model)
        self.nudge(model)

    def unwatch(self, model: str) -> None:
        with self._lock:
            self._models.discard(model)
            self._snapshot = Snapshot(
                {k: v for k, v in self._snapshot.models.items() if k != model}
            )
            self._listed.pop(model, None)
            self._skipped.pop(model, None)

    @property
    def snapshot(self) -> Snapshot:
        return self._snapshot

    @property
    def status(self) -> WatcherStatus:
        return self._status

    @property
    def pending(self) -> frozenset[str]:
        """Models nudged and not polled yet."""
        with self._lock:
            return frozenset(self._nudged)

    def nudge(self, model: str) -> None:
        """Poll ``model`` as soon as possible (thread-safe; what a webhook calls)."""
        with self._lock:
            if model not in self._models:
                return
            self._nudged.add(model)
        loop, wake = self._loop, self._wake
        if loop is not None and wake is not None and not loop.is_closed():
            loop.call_soon_threadsafe(wake.set)

    # -- one poll ---------------------------------------------------------------------
    def _poll_model(
        self, model: str, old: ModelState | None
    ) -> tuple[ModelState, dict[str, ModelVersionInfo]]:
        """The model's state, and what was read of its aliased versions."""
        old = old or ModelState()
        try:
            aliases = dict(self.client.get_model(model).aliases)
        except NotFound:
            return ModelState(exists=False, max_version=old.max_version), {}
        window = max(1, self.settings.window)
        seen: dict[str, ModelVersionInfo] = {}
        token: str | None = None
        while True:
            page, token = self.client.search_versions(model, max_results=window, page_token=token)
            seen.update((v.version, v) for v in page)
            lowest = min((int(v) for v in seen), default=0)
            # Stop once the newest `window` are in hand and everything newer than the
            # last poll is covered; only a burst of new versions costs extra pages.
            caught_up = old.max_version == 0 or lowest <= old.max_version + 1
            if not token or (len(seen) >= window and caught_up):
                break
        for version in set(aliases.values()) - set(seen):
            try:
                seen[version] = self.client.get_version(model, version)
            except NotFound:
                continue  # alias to a deleted version: the alias change still shows
        versions = {v: dict(info.tags) for v, info in seen.items()}
        top = max((int(v) for v in versions), default=0)
        state = ModelState(
            exists=True, aliases=aliases, versions=versions, max_version=max(top, old.max_version)
        )
        return state, {v: seen[v] for v in set(aliases.values()) if v in seen}

    def poll(self, models: Iterable[str] | None = None, *, commit: bool = True) -> PollResult:
        """Poll ``models`` (default: all watched) once. Never raises for an outage."""
        targets = sorted(self.models if models is None else set(models) & self.models)
        states: dict[str, ModelState] = {}
        aliased: dict[str, dict[str, ModelVersionInfo]] = {}
        changes: list[RegistryChange] = []
        error: str | None = None
        unavailable = False
        unchanged: set[str] = set()
        listing: dict[str, RegisteredModelInfo] = {}
        if targets and not self.client.is_online():
            unavailable, error = True, f"{self.client!r} is not answering its health check"
        else:
            if models is None and len(targets) >= max(1, self.settings.sweep_from):
                try:
                    listing = {m.name: m for m in self.client.list_models()}
                except RegistryError as exc:  # read each model in full instead
                    log.warning("listing the registered models failed: %s", exc)
                unchanged = self._unchanged(targets, listing)
            for model in targets:
                old = self._snapshot.models.get(model)
                if model in unchanged:
                    states[model] = old or ModelState()
                    continue
                try:
                    new, aliased[model] = self._poll_model(model, old)
                except RegistryUnavailable as exc:
                    unavailable, error = True, str(exc)
                    break  # the rest keep their old state and are diffed on recovery
                except RegistryError as exc:
                    log.warning("polling %s failed: %s", model, exc)
                    error = str(exc)
                    continue
                states[model] = new
                changes += diff_model(model, old, new)
        status = self._next_status(unavailable, error)
        listed = {m: listing[m].updated_ms for m in states if m in listing and m not in unchanged}
        result = PollResult(tuple(changes), states, status, aliased, frozenset(unchanged), listed)
        if commit:
            self.commit(result)
        return result

    def _unchanged(
        self, targets: Iterable[str], listing: Mapping[str, RegisteredModelInfo]
    ) -> set[str]:
        """The models the listing shows as they were at their last full read (and not due
        for a full read anyway)."""
        same: set[str] = set()
        for model in targets:
            old, info = self._snapshot.models.get(model), listing.get(model)
            if old is None or info is None or not old.exists or model not in self._listed:
                continue
            if dict(info.aliases) != dict(old.aliases) or info.updated_ms != self._listed[model]:
                continue
            if self._skipped.get(model, 0) + 1 >= max(1, self.settings.full_every):
                continue
            same.add(model)
        return same

    def _next_status(self, unavailable: bool, error: str | None) -> WatcherStatus:
        s, prev = self.settings, self._status
        if unavailable:
            failures = prev.failures + 1
            return WatcherStatus(
                state=WatchState.UNAVAILABLE,
                failures=failures,
                last_error=error,
                last_success=prev.last_success,
                next_delay=backoff_delay(failures, s.interval, s.backoff_base, s.backoff_cap),
            )
        return WatcherStatus(
            state=WatchState.READY,
            failures=0,
            last_error=error,
            last_success=time.time(),
            next_delay=s.interval,
        )

    def commit(self, result: PollResult) -> None:
        """Take a poll's states into the snapshot (after its changes were handled)."""
        with self._lock:
            merged = dict(self._snapshot.models)
            merged.update({m: st for m, st in result.states.items() if m in self._models})
            self._snapshot = Snapshot(merged)
            self._listed.update(result.listed)
            for model in result.states:
                skipped = self._skipped.get(model, 0) + 1 if model in result.unchanged else 0
                self._skipped[model] = skipped
        WATCHER_UP.set(0 if result.status.state is WatchState.UNAVAILABLE else 1)
        if self._status.state != result.status.state:
            log.info("registry watcher: %s", result.status.describe())
        self._status = result.status

    def record_failure(self, error: str) -> None:
        """Count a poll that failed in an unexpected way (kept out of the snapshot)."""
        self._status = replace(self._next_status(True, error), state=WatchState.UNAVAILABLE)

    # -- the loop ---------------------------------------------------------------------
    async def run(
        self,
        on_changes: OnChanges,
        stop: asyncio.Event | None = None,
        *,
        on_poll: OnPoll | None = None,
    ) -> None:
        """Poll until ``stop`` is set, handing each batch of changes to ``on_changes``.

        A full poll happens every ``interval`` (or after the back-off delay while MLflow
        is down); a nudged model is polled right away. If ``on_changes`` raises, the
        snapshot is not advanced, so the same changes are offered again next time.
        ``on_poll`` sees every poll's result first, changes or not (the operator's alias
        cache is fed from it, so a daemon woken by a change already reads the new state).
        """
        self._loop = asyncio.get_running_loop()
        self._wake = asyncio.Event()
        stop = stop or asyncio.Event()
        next_full = 0.0
        while not stop.is_set():
            now = time.monotonic()
            with self._lock:
                nudged, self._nudged = self._nudged, set()
            full = now >= next_full
            targets = None if full else nudged
            if full or nudged:
                try:
                    result = await asyncio.to_thread(self.poll, targets, commit=False)
                    if on_poll is not None:
                        on_poll(result)
                    if result.changes:
                        outcome = on_changes(list(result.changes))
                        if inspect.isawaitable(outcome):
                            await outcome
                    self.commit(result)
                except Exception as exc:  # never let the loop die: report and back off
                    log.exception("registry watcher poll failed")
                    self.record_failure(f"{type(exc).__name__}: {exc}")
                if full or self._status.state is WatchState.UNAVAILABLE:
                    next_full = time.monotonic() + self._status.next_delay
            timeout = max(0.0, next_full - time.monotonic())
            self._wake.clear()
            if self._nudged:
                continue
            stop_wait = asyncio.ensure_future(stop.wait())
            wake_wait = asyncio.ensure_future(self._wake.wait())
            try:
                await asyncio.wait(
                    {stop_wait, wake_wait}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED
                )
            finally:
                stop_wait.cancel()
                wake_wait.cancel()
