"""The simulated world the rollout benchmark runs the real controller against.

Only what is outside the operator is simulated: the registry (aliases and tags in memory),
the platform (which versions serve at which weight), the predictor pods and the router.
Each pod and the router keep their counters in their own ``prometheus_client``
``CollectorRegistry`` built by the real ``modeldeploy.serving.metrics`` code, and the
operator reads them through ``generate_latest`` text and the scrape provider's own parser
(``metrics.scrape.parse_samples`` -> ``snapshot.collect``), so names, labels, buckets,
restarts and the warm-up rule are the real ones. Counts are added per tick in bulk
(``add_latency``), never request by request, so a rollout of hours takes milliseconds.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from prometheus_client import CollectorRegistry, Gauge, generate_latest

from modeldeploy.operator.api.status import VersionRef
from modeldeploy.operator.metrics.base import AnalysisTarget, NoDataError
from modeldeploy.operator.metrics.scrape import parse_samples
from modeldeploy.operator.metrics.snapshot import Sample, Snapshot, SourceCounters, collect
from modeldeploy.operator.platforms.base import Target
from modeldeploy.operator.platforms.nop import NopPlatform
from modeldeploy.registry.base import ModelVersionInfo, NotFound, RegisteredModelInfo
from modeldeploy.serving.contract.latency import (
    DEFAULT_LATENCY_WARMUP_REQUESTS,
    latency_bucket_edges,
)
from modeldeploy.serving.metrics import collectors, paired_outcomes_counter

DEPLOYMENT = "m"
EDGES = np.array(latency_bucket_edges())


class SimRegistry:
    """The part of ``RegistryClient`` a tick uses: aliases, versions, tags (in memory)."""

    def __init__(self, name: str, versions: int = 2) -> None:
        self.name = name
        self.aliases: dict[str, str] = {}
        self.tags: dict[str, dict[str, str]] = {str(v): {} for v in range(1, versions + 1)}

    def is_online(self) -> bool:
        return True

    def get_model(self, name: str) -> RegisteredModelInfo:
        self._known(name)
        return RegisteredModelInfo(name, dict(self.aliases))

    def get_version(self, name: str, version: str) -> ModelVersionInfo:
        self._known(name)
        if str(version) not in self.tags:
            raise NotFound(f"{name!r} version {version} not found")
        aliases = tuple(sorted(a for a, v in self.aliases.items() if v == str(version)))
        return ModelVersionInfo(name, str(version), dict(self.tags[str(version)]), aliases)

    def set_alias(self, name: str, alias: str, version: str) -> None:
        self._known(name)
        self.aliases[alias] = str(version)

    def delete_alias(self, name: str, alias: str) -> None:
        self.aliases.pop(alias, None)

    def set_version_tag(self, name: str, version: str, key: str, value: str) -> None:
        self.tags[str(version)][key] = value

    def _known(self, name: str) -> None:
        if name != self.name:
            raise NotFound(f"model {name!r} not found")


@dataclass
class SimPod:
    """One predictor process: its own registry of the contract's series, and its clock."""

    version: str
    role: str
    started_at: float
    seen: int = 0  # requests since the process started (the warm-up rule counts these)
    registry: CollectorRegistry = field(default_factory=CollectorRegistry)

    def __post_init__(self) -> None:
        col = collectors(self.registry)
        base = {"deployment": DEPLOYMENT, "model_version": self.version, "role": self.role}
        # Only the v1 protocol's histogram: the other protocols' series would be all zeros
        # and only slow the parse down (the analysis sums them over protocol anyway).
        self.duration = col.request_duration.labels(**base, protocol="v1")
        self.ok = col.requests.labels(**base, outcome="ok")
        self.error = col.requests.labels(**base, outcome="error")
        col.nan_outputs.labels(**base)
        self.labelled = {
            k: col.labelled_predictions.labels(**base, source="feedback", correct=k)
            for k in ("true", "false")
        }
        start = Gauge("process_start_time_seconds", "Start time.", registry=self.registry)
        start.set(self.started_at)

    def add_latency(self, counts: np.ndarray, mean_seconds: float) -> None:
        """Add per-bucket counts (len(EDGES) + 1, the last is +Inf) to the histogram.

        prometheus_client has no bulk ``observe``; its child keeps one plain counter per
        bucket (non-cumulative) and a sum, and exports them cumulated, so adding to those
        is exactly what ``observe`` would have done request by request.
        """
        for i in np.flatnonzero(counts):
            self.duration._buckets[int(i)].inc(float(counts[i]))
        self.duration._sum.inc(float(counts.sum()) * mean_seconds)

    def add_labels(self, correct: int, wrong: int) -> None:
        if correct:
            self.labelled["true"].inc(correct)
        if wrong:
            self.labelled["false"].inc(wrong)


class SimRouter:
    """The router's paired-outcome counter (one scrape source of its own)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.paired = paired_outcomes_counter(self.registry)

    def add_pairs(self, stable: str, canary: str, cells: np.ndarray) -> None:
        for outcome, count in zip(
            ("both_correct", "stable_only", "canary_only", "both_wrong"), cells, strict=True
        ):
            if count:
                self.paired.labels(DEPLOYMENT, stable, canary, "feedback", outcome).inc(
                    float(count)
                )


class SimProvider:
    """A ``MetricsProvider`` that scrapes the simulated processes.

    ``text=True`` goes through the exposition text and the scrape provider's parser, as
    the operator does; ``text=False`` hands the same registries' samples to
    ``snapshot.collect`` directly (prometheus_client renders the text from exactly these
    samples). The text parser costs about 80 ms a tick here, so the benchmark parses text
    in one rollout per cell and checks that both paths give the same snapshot there
    (``checked``), and takes the samples directly in the others.
    """

    def __init__(self, world: SimPlatform, text: bool = True) -> None:
        self.world = world
        self.text = text
        self.scrapes = 0
        self.checked = 0
        self._fast: dict[CollectorRegistry, FastSamples] = {}

    def snapshot(self, target: AnalysisTarget) -> Snapshot:
        sources: dict[str, SourceCounters] = {}
        for name, registry in self.world.registries():
            fast = self._fast.get(registry)
            if fast is None:
                fast = self._fast[registry] = FastSamples(registry)
            direct = collect(fast(), target)
            if self.text:
                parsed = collect(parse_samples(generate_latest(registry).decode()), target)
                if parsed != direct or collect(samples_of(registry), target) != direct:
                    raise AssertionError(f"{name}: text and samples disagree")
                self.checked += 1
            sources[name] = direct
        self.scrapes += 1
        if not sources:
            raise NoDataError("nothing is served")
        return Snapshot(sources, self.world.clock)

    def is_online(self) -> bool:
        return True


class SimPlatform(NopPlatform):
    """The NopPlatform's bookkeeping, plus the pods it would have started."""

    def __init__(self) -> None:
        super().__init__()
        self.clock = 0.0
        self.pods: dict[str, SimPod] = {}
        self.router = SimRouter()

    def _start(self, role: str, version: str) -> None:
        self.pods[role] = SimPod(version, role, started_at=self.clock)

    def restart(self, role: str) -> None:
        """The pod's process starts again: counters, warm-up count and start time reset."""
        pod = self.pods[role]
        self.pods[role] = SimPod(pod.version, role, started_at=self.clock + 1.0)

    def ensure(self, target: Target, stable: VersionRef) -> None:
        super().ensure(target, stable)
        if "stable" not in self.pods or self.pods["stable"].version != stable.version:
            self._start("stable", stable.version)
        self.pods.pop("canary", None)

    def set_canary(
        self, target: Target, stable: VersionRef, canary: VersionRef, weight: int
    ) -> None:
        super().set_canary(target, stable, canary, weight)
        if "canary" not in self.pods or self.pods["canary"].version != canary.version:
            self._start("canary", canary.version)

    def promote(self, target: Target, ref: VersionRef) -> None:
        super().promote(target, ref)
        self.pods = {"stable": SimPod(ref.version, "stable", started_at=self.clock)}

    def metrics_endpoints(self, target: Target) -> list[str]:
        return [*self.pods, "router"]

    def canary_weight(self) -> float:
        """The canary's share of traffic now, 0..1."""
        if "canary" not in self.pods:
            return 0.0
        return next(iter(self.weight.values()), 0) / 100.0

    def registries(self) -> list[tuple[str, CollectorRegistry]]:
        return [(role, pod.registry) for role, pod in self.pods.items()] + [
            ("router", self.router.registry)
        ]


def samples_of(registry: CollectorRegistry) -> list[Sample]:
    """What ``generate_latest`` would render, as ``(name, labels, value)`` samples."""
    return [(s.name, s.labels, s.value) for metric in registry.collect() for s in metric.samples]


class FastSamples:
    """``samples_of(registry)``, without re-rendering names, labels and bucket edges.

    ``registry.collect()`` formats every bucket edge (``floatToGoString``) and builds every
    label dict again on each call: most of the simulated scrape's cost. The series of a
    registry only change when a child is added, so the names and labels are built once
    per set of children (from prometheus_client's own ``_child_samples``) and only the
    values are read on each call, from the same counters ``_child_samples`` reads. The
    rollout benchmark checks the result against the parsed exposition text in one rollout
    per cell (``SimProvider.text``).
    """

    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry
        self._key: tuple[int, ...] | None = None
        self._series: list[tuple[Any, list[tuple[str, str, dict[str, str]]]]] = []

    def _wrappers(self) -> list[Any]:
        """The registry's prometheus_client metrics (custom collectors are read in full)."""
        return [c for c in self.registry._collector_to_names if hasattr(c, "_is_parent")]

    def _custom(self) -> list[Sample]:
        """Samples of collectors that are not metric wrappers (the predictor's CPU time)."""
        return [
            (s.name, dict(s.labels), s.value)
            for c in self.registry._collector_to_names
            if not hasattr(c, "_is_parent")
            for family in c.collect()
            for s in family.samples
        ]

    def _build(self, wrappers: list[Any]) -> None:
        self._series = []
        for w in wrappers:
            children = (
                [(dict(zip(w._labelnames, lv, strict=True)), c) for lv, c in w._metrics.items()]
                if w._is_parent()
                else [({}, w)]
            )
            for base, child in children:
                rows = [
                    (s.name, w._name + s.name, {**base, **s.labels}) for s in child._child_samples()
                ]
                self._series.append((child, rows))

    def __call__(self) -> list[Sample]:
        wrappers = self._wrappers()
        key = tuple(len(w._metrics) if w._is_parent() else -1 for w in wrappers)
        if key != self._key:
            self._build(wrappers)
            self._key = key
        out: list[Sample] = self._custom()
        for child, rows in self._series:
            values = _values(child, [suffix for suffix, _, _ in rows])
            out.extend((name, labels, v) for (_, name, labels), v in zip(rows, values, strict=True))
        return out


def _values(child: Any, suffixes: list[str]) -> list[float]:
    """The values ``child._child_samples()`` would give, in its order, read directly."""
    buckets = getattr(child, "_buckets", None)
    if buckets is not None:  # a histogram: cumulative buckets, then count, sum, created
        cumulative = np.cumsum([b.get() for b in buckets]).tolist()
        extra = {"_count": cumulative[-1], "_sum": child._sum.get()}
        extra["_created"] = getattr(child, "_created", 0.0)
        return cumulative + [extra[s] for s in suffixes[len(cumulative) :]]
    value = getattr(child, "_value", None)
    if value is None:  # not a plain counter or gauge: ask prometheus_client
        return [s.value for s in child._child_samples()]
    return [child._created if s == "_created" else value.get() for s in suffixes]


def lognormal_bucket_probs(median: float, sigma: float) -> np.ndarray:
    """P(latency in each contract bucket) for a lognormal; the last entry is +Inf."""
    z = (np.log(EDGES) - math.log(median)) / sigma
    cdf = 0.5 * (1.0 + _erf(z / math.sqrt(2.0)))
    probs = np.diff(np.concatenate([[0.0], cdf, [1.0]]))
    return np.clip(probs, 0.0, None) / probs.clip(0.0, None).sum()


def _erf(x: np.ndarray) -> np.ndarray:
    from scipy.special import erf

    return np.asarray(erf(x))


def warmup_split(seen: int, n: int, slow_requests: int) -> tuple[int, int, int]:
    """Of ``n`` requests after ``seen``: (not timed, timed slow, timed normal).

    The predictor does not time its first ``DEFAULT_LATENCY_WARMUP_REQUESTS``; a cold
    canary answers its first ``slow_requests`` slowly (0: no cold start).
    """
    skipped = min(max(DEFAULT_LATENCY_WARMUP_REQUESTS - seen, 0), n)
    slow_end = min(max(slow_requests - seen, 0), n)
    slow = max(slow_end - skipped, 0)
    return skipped, slow, n - skipped - slow


def sample_latency(rng: np.random.Generator, n: int, probs: np.ndarray) -> tuple[np.ndarray, float]:
    """Bucket counts of ``n`` requests drawn from ``probs``, and their mean (bucket edges)."""
    if n <= 0:
        return np.zeros(len(EDGES) + 1, dtype=np.int64), 0.0
    counts = rng.multinomial(n, probs)
    centres = np.concatenate([EDGES, [EDGES[-1] * 1.05]])
    return counts, float((counts * centres).sum() / n)


def describe(world: SimPlatform) -> dict[str, Any]:
    return {role: pod.version for role, pod in world.pods.items()}
