"""Aggregation: the checks' results to one decision. The only place that knows about
deadlines, final steps and what inconclusive does.

Rules, in order:

1. Any check failed -> ``rollback`` (a failure is final: its bound is always valid).
2. Before the deadline: every check passed (non-inferiority shown) -> ``advance``
   (``promote`` on the final step); otherwise ``continue`` collecting.
3. At the deadline: any check inconclusive (missing or too little data) -> the configured
   ``on_inconclusive``: ``rollback``, or ``inconclusive`` (hold where it is and say so).
   A check that met its minimum sample without finding a regression (``undecided``)
   counts as passed, unless ``require_proof`` is set, in which case it too is
   inconclusive. Otherwise -> ``advance`` / ``promote``.

Unreadable metrics are ``observations=None``: every check is inconclusive, never a pass.
"""

from __future__ import annotations

from collections.abc import Callable

from modeldeploy.operator.analysis.accuracy import check_accuracy
from modeldeploy.operator.analysis.config import AnalysisConfig
from modeldeploy.operator.analysis.errors import check_errors
from modeldeploy.operator.analysis.latency import check_latency
from modeldeploy.operator.analysis.observations import Observations
from modeldeploy.operator.analysis.verdict import CheckResult, CheckStatus, Decision, Verdict

Check = Callable[[AnalysisConfig, Observations], CheckResult]
CHECK_FUNCTIONS: dict[str, Check] = {
    "accuracy": check_accuracy,
    "latency": check_latency,
    "errors": check_errors,
}


def run_checks(
    config: AnalysisConfig, observations: Observations | None, unavailable: str | None = None
) -> tuple[CheckResult, ...]:
    """Each configured check's result; all inconclusive when there are no observations."""
    if observations is None:
        why = unavailable or "metrics could not be read"
        return tuple(CheckResult(name, CheckStatus.INCONCLUSIVE, why) for name in config.checks)
    return tuple(CHECK_FUNCTIONS[name](config, observations) for name in config.checks)


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
    *,
    at_deadline: bool,
    final_step: bool,
    unavailable: str | None = None,
) -> Verdict:
    """Decide what the rollout does after this analysis window (pure; see module docs)."""
    checks = run_checks(config, observations, unavailable)
    numbers = _numbers(checks)
    by_status: dict[CheckStatus, list[CheckResult]] = {s: [] for s in CheckStatus}
    for result in checks:
        by_status[result.status].append(result)
    go = Decision.PROMOTE if final_step else Decision.ADVANCE

    def verdict(decision: Decision, reason: str) -> Verdict:
        return Verdict(decision, reason, checks, numbers)

    failed = by_status[CheckStatus.FAIL]
    if failed:
        return verdict(Decision.ROLLBACK, _join(failed))
    passed = by_status[CheckStatus.PASS]
    if len(passed) == len(checks):
        return verdict(go, "all checks passed: " + _join(passed))
    if not at_deadline:
        waiting = by_status[CheckStatus.INCONCLUSIVE] + by_status[CheckStatus.UNDECIDED]
        return verdict(Decision.CONTINUE, "collecting: " + _join(waiting))

    unresolved = list(by_status[CheckStatus.INCONCLUSIVE])
    if unresolved:
        if config.on_inconclusive == "rollback":
            return verdict(
                Decision.ROLLBACK, "deadline reached, inconclusive: " + _join(unresolved)
            )
        return verdict(
            Decision.INCONCLUSIVE, "deadline reached, holding (inconclusive): " + _join(unresolved)
        )
    undecided = by_status[CheckStatus.UNDECIDED]
    reason = "deadline reached, no regression found: " + _join(undecided + passed)
    return verdict(go, reason)
