"""What the canary analysis may tolerate, and how sure it must be: one frozen dataclass.

Every knob is explained in docs/statistics.md. The defaults are the ones the simulation
benchmark (``modeldeploy.tools.bench.simulation``) measures, so the figures quoted in the
docs are the behaviour a user gets without tuning anything.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any, Literal

OnInconclusive = Literal["rollback", "hold"]
PairedMode = Literal["auto", "paired", "unpaired"]
CHECKS: tuple[str, ...] = ("accuracy", "latency", "errors")


@dataclass(frozen=True)
class AnalysisConfig:
    """Limits and confidence for one rollout's analysis.

    A check fails only when its always-valid confidence bound (one-sided, level
    ``confidence``) has crossed the limit, so looking at every interval does not raise
    the false-rollback rate above ``1 - confidence`` per check.
    """

    # accuracy: canary accuracy >= stable accuracy - accuracy_margin
    accuracy_margin: float = 0.005
    confidence: float = 0.95
    min_labels: int = 200
    paired: PairedMode = "auto"
    # scale of the accuracy differences the mixture test is tuned to detect fastest
    accuracy_mixture_scale: float = 0.02
    # latency: canary P99 <= stable P99 * (1 + p99_tolerance), and <= p99_cap_seconds
    latency_quantile: float = 0.99
    p99_tolerance: float = 0.0
    p99_cap_seconds: float | None = None
    min_requests: int = 1000
    # prior weight (pseudo-requests) of the beta mixture behind the quantile bounds
    quantile_mixture_weight: float = 400.0
    # errors: canary error rate <= stable error rate + error_margin; any NaN output fails
    error_margin: float = 0.01
    min_requests_for_errors: int = 100
    # what an unresolved analysis does at its deadline
    on_inconclusive: OnInconclusive = "rollback"
    # at the deadline, does "enough data, no regression found" pass (False), or must
    # each check have proven non-inferiority (True)?
    require_proof: bool = False
    checks: tuple[str, ...] = CHECKS

    def __post_init__(self) -> None:
        if not 0.5 < self.confidence < 1:
            raise ValueError(f"confidence must be in (0.5, 1), got {self.confidence}")
        if not 0 < self.latency_quantile < 1:
            raise ValueError(f"latency_quantile must be in (0, 1), got {self.latency_quantile}")
        for name in ("accuracy_margin", "p99_tolerance", "error_margin"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0")
        if self.p99_cap_seconds is not None and self.p99_cap_seconds <= 0:
            raise ValueError("p99_cap_seconds must be positive when set")
        if self.accuracy_mixture_scale <= 0 or self.quantile_mixture_weight <= 0:
            raise ValueError("mixture parameters must be positive")
        if self.on_inconclusive not in ("rollback", "hold"):
            raise ValueError(
                f"on_inconclusive must be rollback or hold, not {self.on_inconclusive}"
            )
        if self.paired not in ("auto", "paired", "unpaired"):
            raise ValueError(f"paired must be auto, paired or unpaired, not {self.paired}")
        unknown = set(self.checks) - set(CHECKS)
        if unknown or not self.checks:
            raise ValueError(f"checks must be a non-empty subset of {CHECKS}, got {self.checks}")

    @property
    def alpha(self) -> float:
        """The error rate each one-sided bound allows: ``1 - confidence``."""
        return 1.0 - self.confidence

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["checks"] = list(self.checks)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> AnalysisConfig:
        """Build from a (CRD) mapping; unknown keys are an error, not silently dropped."""
        known = {f.name for f in fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"unknown analysis settings: {sorted(unknown)}")
        values = dict(data)
        if "checks" in values:
            values["checks"] = tuple(values["checks"])
        return cls(**values)
