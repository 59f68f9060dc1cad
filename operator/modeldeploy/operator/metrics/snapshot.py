"""Cumulative counters from the metrics contract, per source, and increases between them.

Counters count since their process started. The increase of a source between two
snapshots is ``now - before``, unless the process restarted in between: then it is
``now`` (its counters started again from 0), as Prometheus' ``increase`` does. A restart
is recognised per source (one serving process, or one Prometheus ``instance``) by any of:

* its ``process_start_time_seconds`` changed (catches a restart whose counters already
  grew back past the old values, which no comparison of counts can see);
* any counter went down, or a series it had is gone;
* the histogram increase is not monotone in ``le`` (impossible without a reset).

The observer (``observer.py``) takes these increases snapshot by snapshot and adds them up
(``metrics/accumulate.py``), so a window never subtracts one process's counts from another's.

``collect`` maps raw samples ``(name, labels, value)`` from any source onto this shape,
so the scrape and Prometheus providers share every rule about names and labels. It refuses
NaN, infinite and negative counts (``InvalidMetrics``): a broken exporter is never data.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from functools import lru_cache
from typing import Any

from modeldeploy.operator.analysis.observations import (
    Agreement,
    ArmObservations,
    DriftCounts,
    LatencyHistogram,
    Observations,
    PairedCounts,
)
from modeldeploy.operator.metrics.base import AnalysisTarget, InvalidMetrics, NoDataError
from modeldeploy.serving.contract import names as contract_names

LABELLED = contract_names.LABELLED_PREDICTIONS
REQUESTS = contract_names.REQUESTS
NAN_OUTPUTS = contract_names.NAN_OUTPUTS
CPU_SECONDS = contract_names.CPU_SECONDS
GPU_SECONDS = contract_names.GPU_ALLOCATED_SECONDS
GPU_BUSY_SECONDS = contract_names.GPU_BUSY_SECONDS
DURATION_BUCKET = contract_names.REQUEST_DURATION_BUCKET
PAIRED = contract_names.PAIRED_OUTCOMES_TOTAL
START_TIME = "process_start_time_seconds"  # prometheus_client's process collector
DRIFT_METRICS = contract_names.DRIFT_ARM_SERIES
ARM_METRICS = contract_names.ANALYSIS_ARM_SERIES + DRIFT_METRICS
PAIR_DRIFT_METRICS = contract_names.DRIFT_PAIR_SERIES
PAIRED_OUTCOMES = contract_names.PAIRED_OUTCOMES
CANARY_ROLES = contract_names.CANARY_ROLES
# Two start times closer than this are the same process: prometheus_client computes the
# value from /proc (boot time in whole seconds plus the start in 10 ms clock ticks), so one
# process always reports the same value, and a restart can come well within half a second
# of the old start on an idle machine (a test exporter restarted 0.4 s later did).
RESTART_SLACK_S = 0.05

Sample = tuple[str, Mapping[str, str], float]


def _num(value: float) -> float | int:
    """Whole counts as ints: keeps the status compact and readable."""
    return int(value) if float(value).is_integer() else float(value)


@dataclass(frozen=True)
class ArmCounters:
    """One arm's counters in one source. ``buckets`` maps ``le`` -> cumulative count.

    ``drift`` holds the label-free counters under short keys (each a plain counter, so
    restarts and increases follow the same rules): ``p/<class>`` predictions,
    ``c/<le>`` and ``t/<le>`` the confidence and input-token histograms (cumulative),
    ``x`` truncated inputs; and on the canary arm only, the pairs both arms scored:
    ``a/<stable class>/<canary class>`` (router) and ``s/true``, ``s/false`` (shadow
    agreement).
    """

    correct: float = 0.0
    labelled: float = 0.0
    requests: Mapping[str, float] = field(default_factory=dict)
    nan_outputs: float = 0.0
    buckets: Mapping[float, float] = field(default_factory=dict)
    drift: Mapping[str, float] = field(default_factory=dict)
    cpu_seconds: float | None = None  # None: the arm exports no CPU time (cost unknown)
    gpu_seconds: float | None = None  # allocated GPU seconds; None: the arm holds no GPU
    gpu_busy_seconds: float | None = None  # device seconds of its forward passes

    def _pairs(self, old: ArmCounters) -> list[tuple[float, float]]:
        """(now, before) for every counter either side has; a missing series counts 0."""
        pairs = [(self.correct, old.correct), (self.labelled, old.labelled)]
        pairs.append((self.nan_outputs, old.nan_outputs))
        pairs.append((self.cpu_seconds or 0.0, old.cpu_seconds or 0.0))
        pairs.append((self.gpu_seconds or 0.0, old.gpu_seconds or 0.0))
        pairs.append((self.gpu_busy_seconds or 0.0, old.gpu_busy_seconds or 0.0))
        for outcome in set(self.requests) | set(old.requests):
            pairs.append((self.requests.get(outcome, 0.0), old.requests.get(outcome, 0.0)))
        for bound in set(self.buckets) | set(old.buckets):
            pairs.append((self.buckets.get(bound, 0.0), old.buckets.get(bound, 0.0)))
        for key in set(self.drift) | set(old.drift):
            pairs.append((self.drift.get(key, 0.0), old.drift.get(key, 0.0)))
        return pairs

    def went_down_from(self, old: ArmCounters) -> bool:
        """True when a counter is below its earlier value (or gone), or the histogram
        increase is not monotone: the process restarted in between."""
        if any(now < before for now, before in self._pairs(old)):
            return True
        if set(self.buckets) != set(old.buckets) and old.buckets:
            return True
        deltas = [v - old.buckets.get(b, 0.0) for b, v in sorted(self.buckets.items())]
        return any(d2 < d1 for d1, d2 in itertools.pairwise(deltas))

    def minus(self, old: ArmCounters) -> ArmCounters:
        """Plain difference (the caller has ruled out a restart)."""
        return ArmCounters(
            correct=self.correct - old.correct,
            labelled=self.labelled - old.labelled,
            requests={k: v - old.requests.get(k, 0.0) for k, v in self.requests.items()},
            nan_outputs=self.nan_outputs - old.nan_outputs,
            buckets={k: v - old.buckets.get(k, 0.0) for k, v in self.buckets.items()},
            drift={k: v - old.drift.get(k, 0.0) for k, v in self.drift.items()},
            cpu_seconds=_seconds_sum(self.cpu_seconds, old.cpu_seconds, -1.0),
            gpu_seconds=_seconds_sum(self.gpu_seconds, old.gpu_seconds, -1.0),
            gpu_busy_seconds=_seconds_sum(self.gpu_busy_seconds, old.gpu_busy_seconds, -1.0),
        )

    def plus(self, other: ArmCounters) -> ArmCounters:
        """Sum of two arms' counts; histograms must share their bucket edges."""
        if self.buckets and other.buckets and set(self.buckets) != set(other.buckets):
            raise NoDataError("latency histograms of one arm have different buckets")
        requests = dict(self.requests)
        for k, v in other.requests.items():
            requests[k] = requests.get(k, 0.0) + v
        buckets = dict(self.buckets)
        for b, v in other.buckets.items():
            buckets[b] = buckets.get(b, 0.0) + v
        drift = dict(self.drift)
        for key, v in other.drift.items():
            drift[key] = drift.get(key, 0.0) + v
        return ArmCounters(
            self.correct + other.correct,
            self.labelled + other.labelled,
            requests,
            self.nan_outputs + other.nan_outputs,
            buckets,
            drift,
            _seconds_sum(self.cpu_seconds, other.cpu_seconds, 1.0),
            _seconds_sum(self.gpu_seconds, other.gpu_seconds, 1.0),
            _seconds_sum(self.gpu_busy_seconds, other.gpu_busy_seconds, 1.0),
        )

    def counts(self) -> ArmCounters:
        """Everything but the histogram."""
        return replace(self, buckets={})

    def latency_only(self) -> ArmCounters:
        return ArmCounters(buckets=dict(self.buckets))

    def to_dict(self) -> dict[str, Any]:
        return {
            "c": _num(self.correct),
            "n": _num(self.labelled),
            "r": {k: _num(v) for k, v in self.requests.items()},
            "nan": _num(self.nan_outputs),
            "le": [[_le_text(b), _num(v)] for b, v in sorted(self.buckets.items())],
            "d": {k: _num(v) for k, v in sorted(self.drift.items())},
        } | _seconds_dict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ArmCounters:
        return cls(
            correct=float(data.get("c", 0.0)),
            labelled=float(data.get("n", 0.0)),
            requests={str(k): float(v) for k, v in data.get("r", {}).items()},
            nan_outputs=float(data.get("nan", 0.0)),
            buckets={_parse_le(str(b)): float(v) for b, v in data.get("le", [])},
            drift={str(k): float(v) for k, v in (data.get("d") or {}).items()},
            **seconds_from_dict(data),
        )


SECONDS_KEYS = {"cpu": "cpu_seconds", "gpu": "gpu_seconds", "gpub": "gpu_busy_seconds"}
"""Status keys of the per-arm resource seconds (each absent when the arm exports none)."""


def _seconds_dict(arm: ArmCounters) -> dict[str, float]:
    return {k: getattr(arm, f) for k, f in SECONDS_KEYS.items() if getattr(arm, f) is not None}


def seconds_from_dict(data: Mapping[str, Any]) -> dict[str, float | None]:
    """The ``ArmCounters`` resource-seconds fields kept under ``SECONDS_KEYS`` in ``data``."""
    return {f: float(data[k]) if data.get(k) is not None else None for k, f in SECONDS_KEYS.items()}


def _seconds_sum(a: float | None, b: float | None, sign: float) -> float | None:
    """``a + sign * b`` for CPU or GPU seconds; None (not exported) on both sides stays None."""
    if a is None and b is None:
        return None
    return (a or 0.0) + sign * (b or 0.0)


def _le_text(bound: float) -> str:
    return "+Inf" if math.isinf(bound) else repr(bound)


Paired = tuple[float, float, float, float]


@dataclass(frozen=True)
class SourceCounters:
    """Everything one source exports for this rollout. ``None`` means no series at all.

    ``start`` is the source's ``process_start_time_seconds`` (None when it exports none,
    e.g. a registry without the process collector: then only drops reveal a restart).
    """

    stable: ArmCounters | None = None
    canary: ArmCounters | None = None
    paired: Paired | None = None
    start: float | None = None

    @property
    def is_empty(self) -> bool:
        return self.stable is None and self.canary is None and self.paired is None

    def restarted_since(self, old: SourceCounters) -> bool:
        """Did this source's process restart after ``old`` was taken?"""
        if (
            self.start is not None
            and old.start is not None
            and abs(self.start - old.start) > RESTART_SLACK_S
        ):
            return True
        for now, before in ((self.stable, old.stable), (self.canary, old.canary)):
            if before is not None and now is None:
                return True
            if now is not None and before is not None and now.went_down_from(before):
                return True
        if old.paired is not None:
            if self.paired is None:
                return True
            if any(n < b for n, b in zip(self.paired, old.paired, strict=True)):
                return True
        return False

    def minus(self, old: SourceCounters | None) -> SourceCounters:
        """The increase since ``old``: all of this source's counts after a restart."""
        if old is None or self.restarted_since(old):
            return replace(self, start=None)

        def arm(now: ArmCounters | None, before: ArmCounters | None) -> ArmCounters | None:
            if now is None or before is None:
                return now
            return now.minus(before)

        paired = self.paired
        if paired is not None and old.paired is not None:
            paired = (
                paired[0] - old.paired[0],
                paired[1] - old.paired[1],
                paired[2] - old.paired[2],
                paired[3] - old.paired[3],
            )
        return SourceCounters(arm(self.stable, old.stable), arm(self.canary, old.canary), paired)

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "stable": self.stable.to_dict() if self.stable else None,
            "canary": self.canary.to_dict() if self.canary else None,
            "paired": [_num(v) for v in self.paired] if self.paired is not None else None,
        }
        if self.start is not None:
            data["start"] = self.start
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> SourceCounters:
        paired = data.get("paired")
        start = data.get("start")
        return cls(
            stable=ArmCounters.from_dict(data["stable"]) if data.get("stable") else None,
            canary=ArmCounters.from_dict(data["canary"]) if data.get("canary") else None,
            paired=_paired(paired) if paired is not None else None,
            start=float(start) if start is not None else None,
        )


def _paired(values: Iterable[Any]) -> Paired:
    a, b, c, d = (float(v) for v in values)
    return a, b, c, d


def add_arms(a: ArmCounters | None, b: ArmCounters | None) -> ArmCounters | None:
    if a is None:
        return b
    if b is None:
        return a
    return a.plus(b)


def add_paired(a: Paired | None, b: Paired | None) -> Paired | None:
    if a is None:
        return b
    if b is None:
        return a
    return (a[0] + b[0], a[1] + b[1], a[2] + b[2], a[3] + b[3])


def arm_observations(counts: ArmCounters, latency: ArmCounters | None) -> ArmObservations:
    """One arm's observations: counts from ``counts``, the histogram from ``latency``.

    ``latency`` None (or without buckets) means the arm exported no histogram at all.
    Counts that cannot be counts raise ``InvalidMetrics``.
    """
    buckets = dict(latency.buckets) if latency is not None else {}
    try:
        histogram = (
            LatencyHistogram.from_buckets(list(buckets), list(buckets.values()), cumulative=True)
            if buckets
            else None
        )
        labelled = round(counts.labelled)
        return ArmObservations(
            labelled_correct=min(round(counts.correct), labelled),
            labelled_total=labelled,
            latency=histogram,
            requests={k: round(v) for k, v in counts.requests.items()},
            nan_outputs=round(counts.nan_outputs),
            drift=drift_counts(counts.drift),
            cpu_seconds=counts.cpu_seconds,
            gpu_seconds=counts.gpu_seconds,
            gpu_busy_seconds=counts.gpu_busy_seconds,
        )
    except (ValueError, OverflowError) as exc:
        raise InvalidMetrics(f"counts are not valid: {exc}") from exc


def _histogram_of(drift: Mapping[str, float], prefix: str) -> LatencyHistogram | None:
    buckets = {_parse_le(k[len(prefix) :]): v for k, v in drift.items() if k.startswith(prefix)}
    if not buckets:
        return None
    return LatencyHistogram.from_buckets(list(buckets), list(buckets.values()), cumulative=True)


def drift_counts(drift: Mapping[str, float]) -> DriftCounts | None:
    """An arm's label-free counts from its ``drift`` keys (None: it exported none)."""
    arm_keys = [k for k in drift if k[:2] in ("p/", "c/", "t/") or k == "x"]
    if not arm_keys:
        return None
    return DriftCounts(
        predictions={k[2:]: round(v) for k, v in drift.items() if k.startswith("p/")},
        confidence=_histogram_of(drift, "c/"),
        tokens=_histogram_of(drift, "t/"),
        truncated=round(drift.get("x", 0.0)),
    )


def agreement_of(drift: Mapping[str, float]) -> Agreement | None:
    """Pairs both arms scored, from the canary arm's ``a/`` and ``s/`` keys (None: none)."""
    table: dict[tuple[str, str], int] = {}
    agree = disagree = 0
    for key, value in drift.items():
        if key.startswith("a/"):
            stable, _, canary = key[2:].partition("/")
            table[(stable, canary)] = round(value)
            if stable == canary:
                agree += round(value)
            else:
                disagree += round(value)
        elif key == "s/true":
            agree += round(value)
        elif key == "s/false":
            disagree += round(value)
    present = any(k.startswith(("a/", "s/")) for k in drift)
    return Agreement(agree, disagree, table) if present else None


def observations_of(
    stable: ArmCounters | None,
    canary: ArmCounters | None,
    paired: Paired | None,
    latency: tuple[ArmCounters | None, ArmCounters | None] | None = None,
    *,
    sources: int = 1,
) -> Observations:
    """Observations from summed counters; ``latency`` (stable, canary) overrides histograms."""
    if stable is None or canary is None:
        missing = "stable" if stable is None else "canary"
        raise NoDataError(f"no series for the {missing} arm in {sources} source(s)")
    lat_s, lat_c = latency if latency is not None else (stable, canary)
    pairs = None
    if paired is not None:
        try:
            pairs = PairedCounts(*(round(v) for v in paired))
        except (ValueError, OverflowError) as exc:
            raise InvalidMetrics(f"paired counts are not valid: {exc}") from exc
    try:
        agreement = agreement_of(canary.drift)
    except (ValueError, OverflowError) as exc:
        raise InvalidMetrics(f"agreement counts are not valid: {exc}") from exc
    return Observations(
        arm_observations(stable, lat_s),
        arm_observations(canary, lat_c),
        pairs,
        agreement=agreement,
    )


@dataclass(frozen=True)
class Snapshot:
    """Counters of every source at one moment (``taken_at``, seconds since the epoch)."""

    sources: Mapping[str, SourceCounters]
    taken_at: float = 0.0

    def since(self, baseline: Snapshot | None) -> Snapshot:
        """The increase after ``baseline``, source by source (reset-aware, module docs).

        One step only: a window spanning many reads should add up the increases of
        consecutive snapshots (``accumulate.WindowState``), not call this on its first.
        """
        if baseline is None:
            return self
        return Snapshot(
            {
                name: counters.minus(baseline.sources.get(name))
                for name, counters in self.sources.items()
            },
            self.taken_at,
        )

    def totals(self) -> tuple[ArmCounters | None, ArmCounters | None, Paired | None]:
        """Stable, canary and paired counts summed over the sources."""
        stable: ArmCounters | None = None
        canary: ArmCounters | None = None
        paired: Paired | None = None
        for counters in self.sources.values():
            stable = add_arms(stable, counters.stable)
            canary = add_arms(canary, counters.canary)
            paired = add_paired(paired, counters.paired)
        return stable, canary, paired

    def observations(self) -> Observations:
        """Sum the sources into one window's observations; raises ``MetricsError``."""
        stable, canary, paired = self.totals()
        return observations_of(stable, canary, paired, sources=len(self.sources))

    def to_dict(self) -> dict[str, Any]:
        """Compact, JSON-serialisable: fits in a resource status."""
        return {"t": self.taken_at, "sources": {k: v.to_dict() for k, v in self.sources.items()}}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Snapshot:
        return cls(
            {k: SourceCounters.from_dict(v) for k, v in data.get("sources", {}).items()},
            float(data.get("t", 0.0)),
        )


def _arm_of(labels: Mapping[str, str], target: AnalysisTarget) -> str | None:
    if labels.get("deployment") != target.deployment:
        return None
    version, role = labels.get("model_version"), labels.get("role")
    if version == target.stable_version and role == "stable":
        return "stable"
    if version == target.canary_version and role in CANARY_ROLES:
        return "canary"
    return None


@lru_cache(maxsize=1024)
def _parse_le(text: str) -> float:
    return math.inf if text in ("+Inf", "Inf", "inf") else float(text)


def _count(value: Any, arm: str) -> float:
    """A counter value, or ``InvalidMetrics`` naming the arm (never passed on as data)."""
    number = float(value)
    if math.isnan(number):
        raise InvalidMetrics(f"metrics for {arm} contain a NaN count")
    if math.isinf(number):
        raise InvalidMetrics(f"metrics for {arm} contain an infinite count")
    if number < 0:
        raise InvalidMetrics(f"metrics for {arm} contain a negative count")
    return number


def _drift_key(name: str, labels: Mapping[str, str]) -> str:
    """The ``ArmCounters.drift`` key of one label-free per-arm sample."""
    if name == contract_names.PREDICTIONS:
        return "p/" + labels.get(contract_names.LABEL, "")
    if name == contract_names.TRUNCATED_INPUTS:
        return "x"
    prefix = "c/" if name == contract_names.PREDICTION_CONFIDENCE_BUCKET else "t/"
    return prefix + _le_text(_parse_le(labels.get("le", "+Inf")))


def _pair_key(name: str, labels: Mapping[str, str], target: AnalysisTarget) -> str | None:
    """The canary arm's ``drift`` key of a pair sample of this rollout (None: not ours)."""
    if labels.get("deployment") != target.deployment:
        return None
    if labels.get("stable_version") != target.stable_version:
        return None
    if name == contract_names.PAIRED_PREDICTIONS:
        if labels.get("canary_version") != target.canary_version:
            return None
        stable = labels.get(contract_names.STABLE_LABEL, "")
        canary = labels.get(contract_names.CANARY_LABEL, "")
        return f"a/{stable}/{canary}"
    if labels.get("shadow_version") != target.canary_version:
        return None
    return "s/" + ("true" if labels.get(contract_names.AGREE) == "true" else "false")


_SECONDS_SERIES = {CPU_SECONDS: "cpu", GPU_SECONDS: "gpu", GPU_BUSY_SECONDS: "gpub"}


def collect(samples: Iterable[Sample], target: AnalysisTarget) -> SourceCounters:
    """Map one source's samples onto this rollout's counters (other series are ignored)."""
    arms: dict[str, dict[str, Any]] = {}
    paired: list[float] | None = None
    start: float | None = None

    def new_arm(arm: str) -> dict[str, Any]:
        empty = {"correct": 0.0, "labelled": 0.0, "requests": {}, "nan": 0.0, "buckets": {}}
        return arms.setdefault(arm, {**empty, "drift": {}, "cpu": None, "gpu": None, "gpub": None})

    for name, labels, value in samples:
        if name == START_TIME:
            start = float(value) if math.isfinite(float(value)) else None
            continue
        if name == PAIRED:
            if (
                labels.get("deployment") == target.deployment
                and labels.get("stable_version") == target.stable_version
                and labels.get("canary_version") == target.canary_version
                and labels.get("outcome") in PAIRED_OUTCOMES
            ):
                paired = paired or [0.0, 0.0, 0.0, 0.0]
                paired[PAIRED_OUTCOMES.index(labels["outcome"])] += _count(value, "paired")
            continue
        if name in PAIR_DRIFT_METRICS:
            key = _pair_key(name, labels, target)
            if key is not None:
                drift = new_arm("canary")["drift"]
                drift[key] = drift.get(key, 0.0) + _count(value, "paired predictions")
            continue
        if name not in ARM_METRICS:
            continue
        arm = _arm_of(labels, target)
        if arm is None:
            continue
        acc = new_arm(arm)
        value = _count(value, arm)
        if name == LABELLED:
            acc["labelled"] += value
            if labels.get("correct") == "true":
                acc["correct"] += value
        elif name == REQUESTS:
            outcome = labels.get("outcome", "ok")
            acc["requests"][outcome] = acc["requests"].get(outcome, 0.0) + value
        elif name == NAN_OUTPUTS:
            acc["nan"] += value
        elif name in DRIFT_METRICS:
            key = _drift_key(name, labels)
            acc["drift"][key] = acc["drift"].get(key, 0.0) + value
        elif name in _SECONDS_SERIES:
            key = _SECONDS_SERIES[name]
            acc[key] = (acc[key] or 0.0) + value
        else:  # summed over protocol (v1, v2, grpc)
            bound = _parse_le(labels.get("le", "+Inf"))
            acc["buckets"][bound] = acc["buckets"].get(bound, 0.0) + value

    def build(arm: str) -> ArmCounters | None:
        acc = arms.get(arm)
        if acc is None:
            return None
        return ArmCounters(
            acc["correct"],
            acc["labelled"],
            acc["requests"],
            acc["nan"],
            acc["buckets"],
            acc["drift"],
            acc["cpu"],
            acc["gpu"],
            acc["gpub"],
        )

    return SourceCounters(
        build("stable"),
        build("canary"),
        _paired(paired) if paired is not None else None,
        start,
    )
