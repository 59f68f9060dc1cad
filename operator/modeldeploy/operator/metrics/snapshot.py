"""Cumulative counters from the metrics contract, per source, and window deltas from them.

Counters count since their process started. A window's observations are therefore
``now - baseline``, computed per source (a serving process, or a Prometheus ``instance``)
and per group of counters that reset together (one arm's counters, or the paired
outcomes). A group whose counter went down restarted in between: like Prometheus'
``increase``, its delta is then its current value. A source absent from the baseline
started during the window, so all of its counts are new.

``collect`` maps raw samples ``(name, labels, value)`` from any source onto this shape,
so the scrape and Prometheus providers share every rule about names and labels.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from modeldeploy.operator.analysis.observations import (
    ArmObservations,
    LatencyHistogram,
    Observations,
    PairedCounts,
)
from modeldeploy.operator.metrics.base import AnalysisTarget, NoDataError
from modeldeploy.serving.contract import names as contract_names

LABELLED = contract_names.LABELLED_PREDICTIONS
REQUESTS = contract_names.REQUESTS
NAN_OUTPUTS = contract_names.NAN_OUTPUTS
DURATION_BUCKET = contract_names.REQUEST_DURATION_BUCKET
PAIRED = contract_names.PAIRED_OUTCOMES_TOTAL
ARM_METRICS = contract_names.ANALYSIS_ARM_SERIES
PAIRED_OUTCOMES = contract_names.PAIRED_OUTCOMES
CANARY_ROLES = contract_names.CANARY_ROLES

Sample = tuple[str, Mapping[str, str], float]


@dataclass(frozen=True)
class ArmCounters:
    """One arm's cumulative counters in one source. ``buckets`` maps ``le`` -> count."""

    correct: float = 0.0
    labelled: float = 0.0
    requests: Mapping[str, float] = field(default_factory=dict)
    nan_outputs: float = 0.0
    buckets: Mapping[float, float] = field(default_factory=dict)

    def went_down_from(self, old: ArmCounters) -> bool:
        """True when any counter is below its baseline value: the process restarted."""
        pairs = [(self.correct, old.correct), (self.labelled, old.labelled)]
        pairs.append((self.nan_outputs, old.nan_outputs))
        pairs += [(v, old.requests.get(k, 0.0)) for k, v in self.requests.items()]
        pairs += [(v, old.buckets.get(k, 0.0)) for k, v in self.buckets.items()]
        return any(now < before for now, before in pairs)

    def minus(self, old: ArmCounters) -> ArmCounters:
        if self.went_down_from(old):
            return self
        return ArmCounters(
            correct=self.correct - old.correct,
            labelled=self.labelled - old.labelled,
            requests={k: v - old.requests.get(k, 0.0) for k, v in self.requests.items()},
            nan_outputs=self.nan_outputs - old.nan_outputs,
            buckets={k: v - old.buckets.get(k, 0.0) for k, v in self.buckets.items()},
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "c": self.correct,
            "n": self.labelled,
            "r": dict(self.requests),
            "nan": self.nan_outputs,
            "le": [[_le_text(b), v] for b, v in sorted(self.buckets.items())],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ArmCounters:
        return cls(
            correct=float(data.get("c", 0.0)),
            labelled=float(data.get("n", 0.0)),
            requests={str(k): float(v) for k, v in data.get("r", {}).items()},
            nan_outputs=float(data.get("nan", 0.0)),
            buckets={float(b): float(v) for b, v in data.get("le", [])},
        )


def _le_text(bound: float) -> str:
    return "+Inf" if math.isinf(bound) else repr(bound)


@dataclass(frozen=True)
class SourceCounters:
    """Everything one source exports for this rollout. ``None`` means no series at all."""

    stable: ArmCounters | None = None
    canary: ArmCounters | None = None
    paired: tuple[float, float, float, float] | None = None

    def minus(self, old: SourceCounters | None) -> SourceCounters:
        if old is None:
            return self

        def arm(now: ArmCounters | None, before: ArmCounters | None) -> ArmCounters | None:
            if now is None or before is None:
                return now
            return now.minus(before)

        paired = self.paired
        if (
            paired is not None
            and old.paired is not None
            and not any(n < b for n, b in zip(paired, old.paired, strict=True))
        ):
            paired = (
                paired[0] - old.paired[0],
                paired[1] - old.paired[1],
                paired[2] - old.paired[2],
                paired[3] - old.paired[3],
            )
        return SourceCounters(arm(self.stable, old.stable), arm(self.canary, old.canary), paired)

    def to_dict(self) -> dict[str, Any]:
        return {
            "stable": self.stable.to_dict() if self.stable else None,
            "canary": self.canary.to_dict() if self.canary else None,
            "paired": list(self.paired) if self.paired is not None else None,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> SourceCounters:
        paired = data.get("paired")
        return cls(
            stable=ArmCounters.from_dict(data["stable"]) if data.get("stable") else None,
            canary=ArmCounters.from_dict(data["canary"]) if data.get("canary") else None,
            paired=tuple(float(v) for v in paired) if paired is not None else None,  # type: ignore[arg-type]
        )


def _sum_arms(arms: list[ArmCounters]) -> ArmObservations:
    requests: dict[str, float] = {}
    buckets: dict[float, float] = {}
    bound_sets = {tuple(sorted(a.buckets)) for a in arms if a.buckets}
    if len(bound_sets) > 1:
        raise NoDataError("latency histograms of one arm have different buckets across sources")
    for a in arms:
        for k, v in a.requests.items():
            requests[k] = requests.get(k, 0.0) + v
        for b, v in a.buckets.items():
            buckets[b] = buckets.get(b, 0.0) + v
    latency = (
        LatencyHistogram.from_buckets(list(buckets), list(buckets.values()), cumulative=True)
        if buckets
        else None
    )
    labelled = round(sum(a.labelled for a in arms))
    correct = min(round(sum(a.correct for a in arms)), labelled)
    return ArmObservations(
        labelled_correct=correct,
        labelled_total=labelled,
        latency=latency,
        requests={k: round(v) for k, v in requests.items()},
        nan_outputs=round(sum(a.nan_outputs for a in arms)),
    )


@dataclass(frozen=True)
class Snapshot:
    """Counters of every source at one moment (``taken_at``, seconds since the epoch)."""

    sources: Mapping[str, SourceCounters]
    taken_at: float = 0.0

    def since(self, baseline: Snapshot | None) -> Snapshot:
        """The counts accumulated after ``baseline`` (reset-aware, see module docs)."""
        if baseline is None:
            return self
        return Snapshot(
            {
                name: counters.minus(baseline.sources.get(name))
                for name, counters in self.sources.items()
            },
            self.taken_at,
        )

    def observations(self) -> Observations:
        """Sum the sources into one window's observations; raises ``NoDataError``."""
        stable = [s.stable for s in self.sources.values() if s.stable is not None]
        canary = [s.canary for s in self.sources.values() if s.canary is not None]
        if not stable or not canary:
            missing = "stable" if not stable else "canary"
            raise NoDataError(f"no series for the {missing} arm in {len(self.sources)} source(s)")
        paired_rows = [s.paired for s in self.sources.values() if s.paired is not None]
        paired = None
        if paired_rows:
            totals = [round(sum(row[i] for row in paired_rows)) for i in range(4)]
            paired = PairedCounts(*totals)
        return Observations(_sum_arms(stable), _sum_arms(canary), paired)

    def to_dict(self) -> dict[str, Any]:
        """Compact, JSON-serialisable: fits in a resource status as the window baseline."""
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


def _parse_le(text: str) -> float:
    return math.inf if text in ("+Inf", "Inf", "inf") else float(text)


def collect(samples: Iterable[Sample], target: AnalysisTarget) -> SourceCounters:
    """Map one source's samples onto this rollout's counters (other series are ignored)."""
    arms: dict[str, dict[str, Any]] = {}
    paired: list[float] | None = None
    for name, labels, value in samples:
        if name == PAIRED:
            if (
                labels.get("deployment") == target.deployment
                and labels.get("stable_version") == target.stable_version
                and labels.get("canary_version") == target.canary_version
                and labels.get("outcome") in PAIRED_OUTCOMES
            ):
                paired = paired or [0.0, 0.0, 0.0, 0.0]
                paired[PAIRED_OUTCOMES.index(labels["outcome"])] += float(value)
            continue
        if name not in ARM_METRICS:
            continue
        arm = _arm_of(labels, target)
        if arm is None:
            continue
        acc = arms.setdefault(
            arm, {"correct": 0.0, "labelled": 0.0, "requests": {}, "nan": 0.0, "buckets": {}}
        )
        value = float(value)
        if name == LABELLED:
            acc["labelled"] += value
            if labels.get("correct") == "true":
                acc["correct"] += value
        elif name == REQUESTS:
            outcome = labels.get("outcome", "ok")
            acc["requests"][outcome] = acc["requests"].get(outcome, 0.0) + value
        elif name == NAN_OUTPUTS:
            acc["nan"] += value
        else:  # summed over protocol (v1, v2, grpc)
            bound = _parse_le(labels.get("le", "+Inf"))
            acc["buckets"][bound] = acc["buckets"].get(bound, 0.0) + value

    def build(arm: str) -> ArmCounters | None:
        acc = arms.get(arm)
        if acc is None:
            return None
        return ArmCounters(
            acc["correct"], acc["labelled"], acc["requests"], acc["nan"], acc["buckets"]
        )

    return SourceCounters(
        build("stable"),
        build("canary"),
        tuple(paired) if paired is not None else None,  # type: ignore[arg-type]
    )
