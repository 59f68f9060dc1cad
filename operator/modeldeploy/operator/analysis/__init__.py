"""Canary analysis: pure, always-valid decisions on live accuracy, P99 latency and errors.

``assess(config, observations, unavailable=None) -> Verdict`` is the entry point: an
``Outcome`` (pass, fail or pending) with each check's result. The state machine decides
what the rollout does with it. See docs/statistics.md for the statistics of each check.
"""

from modeldeploy.operator.analysis.assess import assess
from modeldeploy.operator.analysis.config import AnalysisConfig
from modeldeploy.operator.analysis.observations import (
    ArmObservations,
    LatencyHistogram,
    Observations,
    PairedCounts,
)
from modeldeploy.operator.analysis.verdict import CheckResult, CheckStatus, Outcome, Verdict

__all__ = [
    "AnalysisConfig",
    "ArmObservations",
    "CheckResult",
    "CheckStatus",
    "LatencyHistogram",
    "Observations",
    "Outcome",
    "PairedCounts",
    "Verdict",
    "assess",
]
