"""What one analysis window saw, per arm: the inputs of ``assess``.

These are plain counts over the window (deltas, not process-lifetime totals), so the
decision logic never sees counters, resets or scrape timing. Latency is one type for both
raw samples and histogram buckets: a sorted list of upper bounds with cumulative counts.
Raw samples become a histogram whose bounds are the sample values, so the quantile logic
is written once and is exact for samples and conservative for buckets.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any


def _require_counts(what: str, values: Iterable[object]) -> None:
    """Counts are finite, whole and non-negative: anything else is a broken exporter,
    and a NaN would otherwise make a bound that is neither pass nor fail."""
    for value in values:
        number = float(value)  # type: ignore[arg-type]
        if not math.isfinite(number) or number < 0 or not number.is_integer():
            raise ValueError(f"{what} must be whole non-negative numbers, got {value!r}")


@dataclass(frozen=True)
class LatencyHistogram:
    """Cumulative counts ``cumulative[i]`` of requests that took at most ``bounds[i]`` seconds.

    ``bounds`` is strictly increasing and may end with ``inf`` (Prometheus' ``+Inf``).
    """

    bounds: tuple[float, ...] = ()
    cumulative: tuple[int, ...] = ()

    def __post_init__(self) -> None:
        if len(self.bounds) != len(self.cumulative):
            raise ValueError("bounds and cumulative counts differ in length")
        if any(b2 <= b1 for b1, b2 in zip(self.bounds, self.bounds[1:], strict=False)):
            raise ValueError("histogram bounds must be strictly increasing")
        if any(c2 < c1 for c1, c2 in zip(self.cumulative, self.cumulative[1:], strict=False)):
            raise ValueError("cumulative counts must not decrease")
        if any(c < 0 for c in self.cumulative):
            raise ValueError("counts must be non-negative")

    @property
    def count(self) -> int:
        return self.cumulative[-1] if self.cumulative else 0

    @classmethod
    def from_samples(cls, samples: Iterable[float]) -> LatencyHistogram:
        """Exact histogram of raw samples (seconds); NaN samples are rejected."""
        values = sorted(float(s) for s in samples)
        if any(math.isnan(v) for v in values):
            raise ValueError("latency samples contain NaN")
        bounds: list[float] = []
        cumulative: list[int] = []
        for i, value in enumerate(values, start=1):
            if bounds and bounds[-1] == value:
                cumulative[-1] = i
            else:
                bounds.append(value)
                cumulative.append(i)
        return cls(tuple(bounds), tuple(cumulative))

    @classmethod
    def from_buckets(
        cls, bounds: Sequence[float], counts: Sequence[float], *, cumulative: bool = True
    ) -> LatencyHistogram:
        """From Prometheus-style buckets: ``le`` bounds with cumulative or per-bucket counts."""
        pairs = sorted(zip((float(b) for b in bounds), counts, strict=True))
        running = 0
        out: list[int] = []
        for _, c in pairs:
            running = round(float(c)) if cumulative else running + round(float(c))
            out.append(running)
        return cls(tuple(b for b, _ in pairs), tuple(out))

    def to_dict(self) -> dict[str, Any]:
        return {
            "bounds": [b if math.isfinite(b) else "+Inf" for b in self.bounds],
            "cumulative": list(self.cumulative),
        }


@dataclass(frozen=True)
class PairedCounts:
    """Outcomes of labelled inputs that both arms scored (McNemar's 2x2 table)."""

    both_correct: int = 0
    stable_only: int = 0  # stable right, canary wrong
    canary_only: int = 0  # canary right, stable wrong
    both_wrong: int = 0

    def __post_init__(self) -> None:
        _require_counts("paired outcomes", self.to_dict().values())

    @property
    def total(self) -> int:
        return self.both_correct + self.stable_only + self.canary_only + self.both_wrong

    @property
    def discordant(self) -> int:
        return self.stable_only + self.canary_only

    def to_dict(self) -> dict[str, int]:
        return {
            "both_correct": self.both_correct,
            "stable_only": self.stable_only,
            "canary_only": self.canary_only,
            "both_wrong": self.both_wrong,
        }


@dataclass(frozen=True)
class DriftCounts:
    """One arm's label-free counts (docs/metrics.md): what it predicted, how sure it was,
    how long its inputs were. Histograms are cumulative, like latency's."""

    predictions: Mapping[str, int] = field(default_factory=dict)  # class -> count
    confidence: LatencyHistogram | None = None  # top-class probability
    tokens: LatencyHistogram | None = None  # tokens per input after truncation
    truncated: int = 0

    def __post_init__(self) -> None:
        _require_counts("drift counts", [*self.predictions.values(), self.truncated])

    @property
    def inputs(self) -> int:
        """Inputs tokenized (the truncation rate's denominator)."""
        return self.tokens.count if self.tokens is not None else sum(self.predictions.values())

    def to_dict(self) -> dict[str, Any]:
        return {
            "predictions": dict(self.predictions),
            "confidence": self.confidence.to_dict() if self.confidence is not None else None,
            "tokens": self.tokens.to_dict() if self.tokens is not None else None,
            "truncated": self.truncated,
        }


@dataclass(frozen=True)
class Agreement:
    """Inputs both arms scored, without labels: did they predict the same class?

    ``table`` (stable class, canary class) -> count, where the exporter gives it; it also
    says which way the answers moved (the prediction mix, paired).
    """

    agree: int = 0
    disagree: int = 0
    table: Mapping[tuple[str, str], int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        _require_counts("agreement counts", [self.agree, self.disagree, *self.table.values()])

    @property
    def total(self) -> int:
        return self.agree + self.disagree

    def to_dict(self) -> dict[str, Any]:
        return {
            "agree": self.agree,
            "disagree": self.disagree,
            "table": [[s, c, n] for (s, c), n in sorted(self.table.items())],
        }


@dataclass(frozen=True)
class ArmObservations:
    """One arm over the window.

    ``latency`` is None when the arm exported no latency at all (missing data, which is
    not the same as an empty histogram: that is zero requests).
    """

    labelled_correct: int = 0
    labelled_total: int = 0
    latency: LatencyHistogram | None = None
    requests: Mapping[str, int] = field(default_factory=dict)  # outcome -> count
    nan_outputs: int = 0
    drift: DriftCounts | None = None  # None: the arm exported no label-free series
    cpu_seconds: float | None = None  # CPU time of the arm's process (None: not exported)
    gpu_seconds: float | None = None  # GPUs held x seconds (None: the arm holds no GPU)
    gpu_busy_seconds: float | None = None  # device time of its forward passes

    def __post_init__(self) -> None:
        _require_counts("arm counts", [self.labelled_correct, self.labelled_total])
        if not 0 <= self.labelled_correct <= self.labelled_total:
            raise ValueError("need 0 <= labelled_correct <= labelled_total")
        _require_counts("request counts", [*self.requests.values(), self.nan_outputs])
        for name in ("cpu_seconds", "gpu_seconds", "gpu_busy_seconds"):
            value = getattr(self, name)
            if value is not None and not 0 <= value < float("inf"):
                raise ValueError(f"{name} must be a finite number >= 0")

    @property
    def errors(self) -> int:
        return int(self.requests.get("error", 0))

    @property
    def served(self) -> int:
        """Requests the model was responsible for: ok + error (bad input is the client's)."""
        return int(self.requests.get("ok", 0)) + self.errors

    def to_dict(self) -> dict[str, Any]:
        return {
            "labelled_correct": self.labelled_correct,
            "labelled_total": self.labelled_total,
            "latency": self.latency.to_dict() if self.latency is not None else None,
            "requests": dict(self.requests),
            "nan_outputs": self.nan_outputs,
            "drift": self.drift.to_dict() if self.drift is not None else None,
        } | {
            name: round(value, 6)
            for name in ("cpu_seconds", "gpu_seconds", "gpu_busy_seconds")
            if (value := getattr(self, name)) is not None
        }


@dataclass(frozen=True)
class Observations:
    """Both arms over the same window, plus paired outcomes where both scored one input."""

    stable: ArmObservations
    canary: ArmObservations
    paired: PairedCounts | None = None
    # Which traffic step (0-based) of this canary the latency histograms began at: accuracy
    # and errors are one experiment per canary version, latency one per step, so the
    # latency check spends its alpha across steps (``sequential.step_alpha``). Where both
    # arms serve the same requests at every step (local mode), one latency experiment
    # spans the steps and keeps the step it began at (``metrics/accumulate.py``).
    step: int = 0
    agreement: Agreement | None = None  # unlabelled inputs both arms scored

    def __post_init__(self) -> None:
        if self.step < 0:
            raise ValueError("step must be >= 0")

    def to_dict(self) -> dict[str, Any]:
        return {
            "stable": self.stable.to_dict(),
            "canary": self.canary.to_dict(),
            "paired": self.paired.to_dict() if self.paired is not None else None,
            "step": self.step,
            "agreement": self.agreement.to_dict() if self.agreement is not None else None,
        }
