"""Probe every rollout named in the joiner's arms file: the prober as the platforms run it.

The operator already tells the joiner where each arm of an undecided rollout serves (one
``{"deployments": {name: {"model", "arms", ...}}}`` file per deployment, ``contract/
joiner.py``). When probing is on for that rollout (``spec.rollout.prober.enabled`` and the
stable version has a golden set) the entry also carries a ``probe`` block,
``{"since": <canary start, epoch s>, "rate": <probes/s>, "registry": <URI>}``. This module
reads the same files (a file or a directory, as the joiner does) and runs one
:class:`~.core.Prober` per such rollout, with the stable version's golden set read from
the registry (``registry/golden.py``, verified against its digest). A rollout whose entry
goes away (decided) is stopped; a new pair of versions starts a new schedule.

Locally the platform starts ``python -m modeldeploy.serving.prober --arms-file DIR`` per
deployment; on a cluster the chart runs the same command in the joiner's pod, next to the
mounted arms ConfigMap (no Kubernetes API access: it only reads files and the registry).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry

from modeldeploy.serving.prober.core import Prober, ProberConfig, ProberMetrics
from modeldeploy.serving.prober.golden import GoldenSet
from modeldeploy.serving.prober.schedule import DEFAULT_MARGIN_S, rollout_key

log = logging.getLogger(__name__)

PROBE_KEY = "probe"
RETRY_S = 30.0  # a golden set that could not be read is asked for again after this long


@dataclass(frozen=True)
class ProbeTarget:
    """One undecided rollout to probe, as its arms entry names it."""

    deployment: str
    model: str
    stable_url: str
    canary_url: str
    stable_version: str
    canary_version: str
    since: float
    rate: float
    registry: str


@dataclass(frozen=True)
class Golden:
    """A golden set with the digest that names it (part of the rollout's key)."""

    examples: GoldenSet
    digest: str


# (registry URI, model, version) -> the version's golden set, or None when it has none.
GoldenSource = Callable[[str, str, str], Awaitable[Golden | None]]


def targets_in(data: object) -> dict[str, ProbeTarget]:
    """The rollouts to probe in one arms file's content (entries without ``probe`` are not).

    Raises ValueError naming what is wrong, like the joiner's reader.
    """
    if not isinstance(data, dict) or not isinstance(data.get("deployments"), dict):
        raise ValueError('expected {"deployments": {<name>: {"model": ..., "arms": {...}}}}')
    out: dict[str, ProbeTarget] = {}
    for name, entry in data["deployments"].items():
        if not isinstance(entry, dict) or not isinstance(entry.get(PROBE_KEY), dict):
            continue
        probe, arms = entry[PROBE_KEY], entry.get("arms")
        if not isinstance(arms, dict) or not all(
            isinstance(arms.get(r), dict) and arms[r].get("url") for r in ("stable", "canary")
        ):
            raise ValueError(f"deployment {name!r}: a probe needs a stable and a canary arm")
        try:
            since, rate = float(probe["since"]), float(probe["rate"])
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"deployment {name!r}: probe needs 'since' and 'rate'") from exc
        if not (math.isfinite(since) and math.isfinite(rate) and rate > 0):
            raise ValueError(f"deployment {name!r}: bad probe since/rate")
        out[str(name)] = ProbeTarget(
            deployment=str(name),
            model=str(entry.get("model") or name),
            stable_url=str(arms["stable"]["url"]).rstrip("/"),
            canary_url=str(arms["canary"]["url"]).rstrip("/"),
            stable_version=str(arms["stable"].get("version") or ""),
            canary_version=str(arms["canary"].get("version") or ""),
            since=since,
            rate=rate,
            registry=str(probe.get("registry") or ""),
        )
    return out


def read_targets(path: Path) -> dict[str, ProbeTarget]:
    """Every rollout to probe under ``path`` (a file, or every ``*.json`` of a directory).

    A file that cannot be read or parsed is skipped with a warning (a half-written
    ConfigMap probes nothing wrongly); a deployment in two files is left out.
    """
    files = sorted(path.glob("*.json")) if path.is_dir() else [path]
    found: dict[str, ProbeTarget] = {}
    twice: set[str] = set()
    for file in files:
        try:
            targets = targets_in(json.loads(file.read_text(encoding="utf-8")))
        except (OSError, ValueError) as exc:
            log.warning("prober: arms file %s skipped: %s", file, exc)
            continue
        for name, target in targets.items():
            if name in found:
                twice.add(name)
            found[name] = target
    for name in twice:
        log.warning("prober: deployment %s is in two arms files: not probed", name)
        found.pop(name, None)
    return found


def registry_golden_source() -> GoldenSource:
    """Read golden sets from the registry (the MLflow client, off the event loop).

    The client is imported now, before the prober says it is ready: importing MLflow takes
    seconds, and the first rollout's schedule must not lose those to it.
    """
    import modeldeploy.registry.mlflow_client  # noqa: F401

    async def source(registry: str, model: str, version: str) -> Golden | None:
        return await asyncio.to_thread(_read_from_registry, registry, model, version)

    return source


def _read_from_registry(registry: str, model: str, version: str) -> Golden | None:
    from modeldeploy.registry import golden as registry_golden
    from modeldeploy.registry.base import NotFound
    from modeldeploy.registry.mlflow_client import MlflowRegistry

    client = MlflowRegistry(registry)
    try:
        examples = registry_golden.read_golden(client, model, version)
    except NotFound:
        return None
    ref = registry_golden.golden_ref(client.get_version(model, version).tags)
    digest = ref.sha256 if ref is not None else ""
    return Golden(GoldenSet(examples.texts, examples.labels), digest)


class ArmsProber:
    """Keep one prober running per rollout named in the arms file(s); stop the others."""

    def __init__(
        self,
        path: Path | str,
        golden: GoldenSource,
        registry: CollectorRegistry | None = None,
        *,
        poll_s: float = 2.0,
        timeout_s: float = 10.0,
        margin_s: float = DEFAULT_MARGIN_S,
    ) -> None:
        self.path = Path(path)
        self.golden = golden
        self.registry = registry or CollectorRegistry()
        self.poll_s = poll_s
        self.timeout_s = timeout_s
        self.margin_s = margin_s
        self.running: dict[str, tuple[ProbeTarget, asyncio.Task[int], asyncio.Event]] = {}
        self.probers: dict[str, Prober] = {}
        self._goldens: dict[tuple[str, str, str], tuple[Golden | Exception | None, float]] = {}
        self._said: dict[str, str] = {}
        self.used_up: set[ProbeTarget] = set()  # rollouts whose golden set is spent

    def _metrics(self, deployment: str) -> ProberMetrics:
        return ProberMetrics(deployment, self.registry)

    def _say(self, deployment: str, state: str, message: str) -> None:
        """Log a state change once (the state gauge says it all the time)."""
        if self._said.get(deployment) != message:
            log.warning("prober for %s: %s", deployment, message)
            self._said[deployment] = message
        self._metrics(deployment).set_state(state)

    async def _golden_for(self, target: ProbeTarget, now: float) -> Golden | Exception | None:
        """The stable version's set: kept once found (a version's set never changes); a
        missing one, or a failed read, is asked for again after ``RETRY_S``."""
        key = (target.registry, target.model, target.stable_version)
        cached = self._goldens.get(key)
        if cached is not None and (isinstance(cached[0], Golden) or now - cached[1] < RETRY_S):
            return cached[0]
        try:
            found: Golden | Exception | None = await self.golden(*key)
        except Exception as exc:  # the registry is down, or the set is damaged
            found = exc
        self._goldens[key] = (found, now)
        return found

    async def sync(self, now: float | None = None) -> None:
        """One pass: start probers for new rollouts, stop those whose entry went away."""
        loop_now = asyncio.get_running_loop().time() if now is None else now
        wanted = await asyncio.to_thread(read_targets, self.path)
        for name in list(self.running):
            target, task, stop = self.running[name]
            if wanted.get(name) != target or task.done():
                stop.set()
                await asyncio.gather(task, return_exceptions=True)
                del self.running[name]
                if self.probers[name].exhausted:
                    self.used_up.add(target)
        for name in [n for n in self.probers if n not in wanted]:
            del self.probers[name]
            self._say(name, "stopped", "no undecided rollout to probe: stopped")
        self.used_up &= set(wanted.values())
        for name, target in wanted.items():
            if name in self.running or target in self.used_up:
                continue  # probing, or used up for this rollout: idle until it changes
            golden = await self._golden_for(target, loop_now)
            if isinstance(golden, Exception):
                self._say(name, "registry_error", f"golden set not readable: {golden}")
                continue
            if golden is None:
                self._say(
                    name,
                    "no_golden_set",
                    f"no golden set for version {target.stable_version}: prober idle",
                )
                continue
            self._start(target, golden)

    def _start(self, target: ProbeTarget, golden: Golden) -> None:
        config = ProberConfig(
            deployment=target.deployment,
            stable_url=target.stable_url,
            canary_url=target.canary_url,
            model_name=target.model,
            rate_per_s=target.rate,
            timeout_s=self.timeout_s,
            since=target.since,
            margin_s=self.margin_s,
            # label-view answers name no version: count them for the versions the arms serve
            stable_version=target.stable_version,
            canary_version=target.canary_version,
            key=rollout_key(
                target.deployment, target.stable_version, target.canary_version, golden.digest
            ),
        )
        prober = Prober(config, golden.examples, self._metrics(target.deployment))
        left = prober.schedule.size - prober.next_slot
        self._say(
            target.deployment,
            "probing",
            f"probing version {target.stable_version} against {target.canary_version} with"
            f" {left} of {prober.schedule.size} golden examples left at {target.rate}/s",
        )
        stop = asyncio.Event()
        self.probers[target.deployment] = prober
        self.running[target.deployment] = (target, asyncio.create_task(prober.run(stop)), stop)

    async def run(self, stop: asyncio.Event) -> None:
        """Sync every ``poll_s`` until ``stop``; then stop every prober."""
        while not stop.is_set():
            try:
                await self.sync()
            except Exception:  # never let one bad pass end the prober
                log.exception("prober: sync failed")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=self.poll_s)
        for _, _task, task_stop in self.running.values():
            task_stop.set()
        await asyncio.gather(*(t for _, t, _ in self.running.values()), return_exceptions=True)
        self.running.clear()

    def snapshot(self) -> Mapping[str, Any]:
        """For /healthz: each deployment's prober and how many probes it sent."""
        return {
            name: {"sent": p.sent, "exhausted": p.exhausted, "left": p.schedule.size - p.next_slot}
            for name, p in self.probers.items()
        }
