"""Aggregation: the checks' results to one outcome, ``FAIL``, ``PASS`` or ``PENDING``.

The analysis knows statistics, not rollouts: no deadlines, no steps, no promotion. Those
belong to the state machine (``rollout.machine``), which turns the outcome into an action.

1. Any check failed -> ``FAIL`` (final: its bound is always valid, so it stays crossed).
2. Every check passed (non-inferiority proven at the configured confidence) -> ``PASS``.
3. Otherwise -> ``PENDING``: some check is inconclusive (too little data) or undecided
   (enough data, bounds still straddle the limit). "No regression found" is not proof,
   so it is never a pass; what a step that stays pending until its deadline does is the
   machine's ``onInconclusive``.

Unreadable metrics are ``observations=None``: every check is inconclusive, never a pass.
"""

from __future__ import annotations

from collections.abc import Callable

from modeldeploy.operator.analysis.accuracy import check_accuracy
from modeldeploy.operator.analysis.config import AnalysisConfig
from modeldeploy.operator.analysis.drift import check_names as drift_check_names
from modeldeploy.operator.analysis.drift import run_drift_checks
from modeldeploy.operator.analysis.errors import check_errors
from modeldeploy.operator.analysis.latency import check_latency
from modeldeploy.operator.analysis.observations import Observations
from modeldeploy.operator.analysis.verdict import CheckResult, CheckStatus, Outcome, Verdict

Check = Callable[[AnalysisConfig, Observations], CheckResult]
CHECK_FUNCTIONS: dict[str, Check] = {
    "accuracy": check_accuracy,
    "latency": check_latency,
    "errors": check_errors,
}


def run_checks(
    config: AnalysisConfig, observations: Observations | None, unavailable: str | None = None
) -> tuple[CheckResult, ...]:
    """Each configured check's result, then each enabled drift signal's (``drift.py``);
    all inconclusive when there are no observations."""
    if observations is None:
        why = unavailable or "metrics could not be read"
        names = (*config.checks, *drift_check_names(config))
        return tuple(CheckResult(name, CheckStatus.INCONCLUSIVE, why) for name in names)
    checks = tuple(CHECK_FUNCTIONS[name](config, observations) for name in config.checks)
    return checks + run_drift_checks(config, observations)


def _numbers(checks: tuple[CheckResult, ...]) -> dict[str, object]:
    flat: dict[str, object] = {}
    for result in checks:
        for key, value in result.numbers.items():
            flat[f"{result.name}.{key}"] = value
    return flat


def _join(results: list[CheckResult]) -> str:
    return "; ".join(f"{r.name}: {r.reason}" for r in results)


def assess(
    config: AnalysisConfig,
    observations: Observations | None,
    unavailable: str | None = None,
) -> Verdict:
    """The checks' outcome for this window (pure; see the module docstring)."""
    checks = run_checks(config, observations, unavailable)
    numbers = _numbers(checks)
    failed = [r for r in checks if r.status is CheckStatus.FAIL]
    if failed:
        return Verdict(Outcome.FAIL, _join(failed), checks, numbers)
    if all(r.status is CheckStatus.PASS for r in checks):
        return Verdict(Outcome.PASS, "all checks passed: " + _join(list(checks)), checks, numbers)
    waiting = [r for r in checks if r.status is not CheckStatus.PASS]
    return Verdict(Outcome.PENDING, "not yet proven: " + _join(waiting), checks, numbers)
