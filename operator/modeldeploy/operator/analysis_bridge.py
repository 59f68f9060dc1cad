"""Map the resource's rollout policy onto the analysis's ``AnalysisConfig`` (one place)."""

from __future__ import annotations

from typing import Any

from modeldeploy.operator.api.types import ModelDeploymentSpec


def analysis_config(spec: ModelDeploymentSpec) -> Any:
    from modeldeploy.operator.analysis.config import AnalysisConfig

    ro = spec.rollout
    return AnalysisConfig(
        accuracy_margin=ro.accuracy_margin,
        confidence=min(ro.accuracy_confidence, 0.999),
        min_labels=ro.min_labels_per_step,
        p99_tolerance=ro.p99_tolerance,
        p99_cap_seconds=ro.p99_cap_ms / 1000.0 if ro.p99_cap_ms else None,
        min_requests=ro.min_requests_per_step,
        error_margin=ro.error_budget,
        on_inconclusive=ro.on_inconclusive,
    )
