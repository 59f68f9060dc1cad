"""``spec.rollout.analysis``: what the canary analysis may tolerate and how sure it must be.

This model *is* the analysis configuration (``modeldeploy.operator.analysis.config``
re-exports it as ``AnalysisConfig``), so the CRD, the parser and the statistics share one
set of names, bounds and defaults. The defaults are the ones the simulation benchmark
(``modeldeploy.tools.bench.simulation``) measures, so the figures in docs/statistics.md
are what a user gets without tuning. The bounds are what the statistics accept: every value
the schema admits builds a working configuration (``tests/unit/operator/test_spec_bounds.py``
walks them).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, field_validator

from modeldeploy.operator.api.base import SpecModel
from modeldeploy.operator.api.drift import DriftConfig

OnInconclusive = Literal["rollback", "hold"]
PairedMode = Literal["auto", "paired", "unpaired"]
CheckName = Literal["accuracy", "latency", "errors"]
CHECKS: tuple[CheckName, ...] = ("accuracy", "latency", "errors")

# The latency histogram's buckets grow geometrically by this ratio. The latency check compares
# the arms' shares above thresholds one tolerance apart on these edges, so it resolves the
# tolerances ratio**k - 1 exactly (0.05, 0.1025, 0.157625, ...); others are rounded up to fail
# and down to pass. Below one bucket an identical canary could never be proven equal.
LATENCY_BUCKET_RATIO = 1.05
MIN_P99_TOLERANCE = round(LATENCY_BUCKET_RATIO - 1, 6)
DEFAULT_P99_TOLERANCE = round(LATENCY_BUCKET_RATIO**2 - 1, 6)


class AnalysisConfig(SpecModel):
    """The gates a canary must pass at each step, judged with always-valid sequential bounds.

    A check fails only when its one-sided confidence bound (level ``confidence``) has
    crossed the limit, so analysing at every interval does not raise the false-rollback
    rate above ``1 - confidence`` per check.
    """

    accuracy_margin: float = Field(
        default=0.01,
        ge=0.0,
        le=1.0,
        description="How much lower the canary's accuracy may be than stable's, absolute"
        " (0.005 = half a point): canary accuracy >= stable accuracy - margin.",
    )
    confidence: float = Field(
        default=0.95,
        gt=0.5,
        le=0.999,
        description="Confidence of every one-sided bound; 1 - confidence is the chance per"
        " check of rolling back a canary that is in fact fine.",
    )
    min_labels: int = Field(
        default=200,
        ge=1,
        le=10_000_000,
        description="Labelled predictions (pairs when paired) per arm before the accuracy"
        " check may pass or count as 'no regression' at the deadline.",
    )
    paired: PairedMode = Field(
        default="auto",
        description="Accuracy test: paired uses requests both arms scored (far fewer labels"
        " needed), unpaired compares the arms' own labels, auto pairs when pairs exist.",
    )
    accuracy_mixture_scale: float = Field(
        default=0.02,
        ge=0.001,
        le=1.0,
        description="The accuracy difference the sequential mixture test detects fastest;"
        " tuning only, not a limit.",
    )
    latency_quantile: float = Field(
        default=0.99,
        ge=0.5,
        le=0.999,
        description="The latency quantile compared (0.99 = P99).",
    )
    p99_tolerance: float = Field(
        default=DEFAULT_P99_TOLERANCE,
        ge=MIN_P99_TOLERANCE,
        le=10.0,
        description="How much slower the canary's latency quantile may be, relative (0.1 ="
        " 10%): canary <= stable x (1 + tolerance). Latency buckets grow by 5% each, so"
        " 1.05^k - 1 (0.05, 0.1025, 0.157625, ...) are resolved exactly; others are rounded"
        " up to fail and down to pass. At least 0.05 (one bucket).",
    )
    p99_cap_seconds: float | None = Field(
        default=None,
        gt=0.0,
        le=3600.0,
        description="An absolute ceiling on the canary's latency quantile, in seconds;"
        " unset = no ceiling.",
    )
    min_requests: int = Field(
        default=1000,
        ge=1,
        le=100_000_000,
        description="Requests per arm before the latency check may pass (about 10 past the"
        " P99 at the default).",
    )
    quantile_mixture_weight: float = Field(
        default=400.0,
        ge=1.0,
        le=1_000_000.0,
        description="Prior weight (pseudo-requests) of the mixture behind the latency"
        " bounds; tuning only, not a limit.",
    )
    error_margin: float = Field(
        default=0.01,
        ge=0.0,
        le=1.0,
        description="How much higher the canary's error rate may be, absolute (0.01 = 1"
        " point). Any NaN output fails the canary regardless.",
    )
    min_requests_for_errors: int = Field(
        default=100,
        ge=1,
        le=100_000_000,
        description="Requests per arm before the error check may pass.",
    )
    on_inconclusive: OnInconclusive = Field(
        default="hold",
        description="What a step that is still inconclusive at its deadline does: roll back,"
        " or hold at its weight and say so.",
    )
    checks: tuple[CheckName, ...] = Field(
        default=CHECKS,
        min_length=1,
        max_length=len(CHECKS),
        description="The checks that gate the rollout, each at most once.",
        json_schema_extra={"x-kubernetes-list-type": "set"},
    )

    drift: DriftConfig = Field(
        default_factory=DriftConfig,
        description="Label-free checks of the canary against stable on the same window"
        " (prediction mix, confidence, input length, truncation, agreement); each off"
        " unless enabled.",
    )

    @field_validator("checks")
    @classmethod
    def _checks_once(cls, value: tuple[CheckName, ...]) -> tuple[CheckName, ...]:
        if len(set(value)) != len(value):
            raise ValueError(f"each check may appear once, got {list(value)}")
        return value

    @property
    def alpha(self) -> float:
        """The error rate each one-sided bound allows: ``1 - confidence``."""
        return 1.0 - self.confidence

    def to_dict(self) -> dict[str, Any]:
        """Python names, JSON-ready (the benchmark writes it next to its results)."""
        data = self.model_dump()
        data["checks"] = list(self.checks)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> AnalysisConfig:
        """Build from Python names; unknown keys are an error, not silently dropped."""
        unknown = set(data) - set(cls.model_fields)
        if unknown:
            raise ValueError(f"unknown analysis settings: {sorted(unknown)}")
        return cls.model_validate(data, by_name=True)
