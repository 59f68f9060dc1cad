"""Cost per 1k inferences per arm: a figure the analysis reports, never a gate.

Each arm's process exports its own CPU time (``modeldeploy_cpu_seconds_total``,
docs/metrics.md); over the same window as the checks, CPU seconds per 1,000 requests is
``1000 * cpu / requests``, and with ``spec.cost.cpuCoreHour`` that is money:
``cpu_per_1k / 3600 * price``. The comparison needs no price: "the canary costs 18% more
per 1k inferences" is the ratio of the two arms' CPU seconds per request.

Cost changes no decision (the checks prove quality; what a candidate may cost is a
capacity question for people), so it only adds numbers to the verdict, and a sentence to the
reason of a passing verdict, which becomes the promotion reason, when the canary costs at
least ``NOTE_ABOVE`` more: below that the difference is within what shared cores and
process start-up move between two processes.
"""

from __future__ import annotations

from dataclasses import replace

from modeldeploy.operator.analysis.observations import ArmObservations, Observations
from modeldeploy.operator.analysis.verdict import Outcome, Verdict

NOTE_ABOVE = 0.05  # relative: a canary 5% or more costlier per 1k is named in the reason
MIN_REQUESTS = 100  # per arm: fewer and the process's idle CPU dominates the figure


def cpu_seconds_per_1k(arm: ArmObservations) -> float | None:
    """CPU seconds per 1,000 requests (every outcome: refused input costs CPU too), or
    None when the arm exports no CPU time or served fewer than ``MIN_REQUESTS``."""
    total = sum(arm.requests.values())
    if arm.cpu_seconds is None or total < MIN_REQUESTS:
        return None
    return 1000.0 * arm.cpu_seconds / total


def numbers(observations: Observations, price_per_core_hour: float | None) -> dict[str, float]:
    """``cost.*`` numbers for the status (``lastAnalysis.numbers``) and the operator metric."""
    out: dict[str, float] = {}
    per_arm = {
        "stable": cpu_seconds_per_1k(observations.stable),
        "canary": cpu_seconds_per_1k(observations.canary),
    }
    for arm, cpu in per_arm.items():
        if cpu is None:
            continue
        out[f"{arm}_cpu_seconds_per_1k"] = round(cpu, 6)
        if price_per_core_hour is not None:
            out[f"{arm}_per_1k"] = round(cpu / 3600.0 * price_per_core_hour, 8)
    stable, canary = per_arm["stable"], per_arm["canary"]
    if stable and canary is not None:
        out["canary_relative"] = round(canary / stable - 1.0, 4)
    return out


def with_cost(
    verdict: Verdict, observations: Observations | None, price_per_core_hour: float | None
) -> Verdict:
    """``verdict`` with the ``cost.*`` numbers, and on a pass the costlier-canary note."""
    if observations is None:
        return verdict
    figures = numbers(observations, price_per_core_hour)
    if not figures:
        return verdict
    reason = verdict.reason
    relative = figures.get("canary_relative")
    if verdict.outcome is Outcome.PASS and relative is not None and relative >= NOTE_ABOVE:
        reason += (
            f"; cost: the canary costs {relative:.0%} more per 1k inferences"
            f" ({figures['canary_cpu_seconds_per_1k']:.3g} vs"
            f" {figures['stable_cpu_seconds_per_1k']:.3g} CPU seconds)"
        )
    extra = {f"cost.{k}": v for k, v in figures.items()}
    return replace(verdict, reason=reason, numbers={**verdict.numbers, **extra})
