"""Canary analysis: pure, always-valid decisions on live accuracy, P99 latency and errors.

``assess(config, observations, at_deadline=..., final_step=...) -> Verdict`` is the entry
point; see docs/statistics.md for the statistics behind each check.
"""

from modeldeploy.operator.analysis.assess import assess
from modeldeploy.operator.analysis.config import AnalysisConfig
from modeldeploy.operator.analysis.observations import (
    ArmObservations,
    LatencyHistogram,
    Observations,
    PairedCounts,
)
from modeldeploy.operator.analysis.verdict import CheckResult, CheckStatus, Decision, Verdict

__all__ = [
    "AnalysisConfig",
    "ArmObservations",
    "CheckResult",
    "CheckStatus",
    "Decision",
    "LatencyHistogram",
    "Observations",
    "PairedCounts",
    "Verdict",
    "assess",
]
