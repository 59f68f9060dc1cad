"""Errors and NaN outputs: any NaN from the canary fails at once; the error rate must be
non-inferior to stable's within ``error_margin``, by the same always-valid test as unpaired
accuracy (a proportion of failed requests instead of wrong answers).

Requests rejected as ``bad_input`` are the client's doing and count in neither numerator
nor denominator.
"""

from __future__ import annotations

from modeldeploy.operator.analysis.config import AnalysisConfig
from modeldeploy.operator.analysis.observations import Observations
from modeldeploy.operator.analysis.sequential import unpaired_difference
from modeldeploy.operator.analysis.verdict import CheckResult, CheckStatus, distinct, judge

NAME = "errors"


def check_errors(config: AnalysisConfig, observations: Observations) -> CheckResult:
    stable, canary = observations.stable, observations.canary
    numbers: dict[str, object] = {
        "stable_requests": stable.served,
        "canary_requests": canary.served,
        "stable_errors": stable.errors,
        "canary_errors": canary.errors,
        "stable_nan": stable.nan_outputs,
        "canary_nan": canary.nan_outputs,
        "margin": config.error_margin,
    }
    if canary.nan_outputs > 0:
        return CheckResult(
            NAME,
            CheckStatus.FAIL,
            f"canary produced {canary.nan_outputs} NaN output(s) in {canary.served} requests",
            numbers,
        )
    n_s, n_c = stable.served, canary.served
    if min(n_s, n_c) < config.min_requests_for_errors:
        return CheckResult(
            NAME,
            CheckStatus.INCONCLUSIVE,
            f"{n_c} canary and {n_s} stable requests, need {config.min_requests_for_errors} "
            "per arm before judging the error rate",
            numbers,
        )
    harm, radius = unpaired_difference(
        canary.errors,
        n_c,
        stable.errors,
        n_s,
        alpha=config.alpha,
        scale=config.accuracy_mixture_scale,
    )
    lower, upper = float(harm - radius), float(harm + radius)
    status = judge(lower, upper, config.error_margin)
    rate_c, rate_s = canary.errors / n_c, stable.errors / n_s
    numbers.update(
        stable_error_rate=rate_s,
        canary_error_rate=rate_c,
        difference_lower=lower,
        difference_upper=upper,
    )
    head = f"error rate {rate_c:.2%} vs {rate_s:.2%}"
    level = f"{config.confidence * 100:g}%"
    amount = f"{n_c} canary / {n_s} stable requests"
    if status is CheckStatus.FAIL:
        bound, limit = distinct(lower, config.error_margin)
        reason = f"{head}, {level} bound {bound} above margin {limit}, {amount}"
    elif status is CheckStatus.PASS:
        bound, limit = distinct(upper, config.error_margin)
        reason = f"{head}, {level} bound {bound} below margin {limit}, {amount}"
    else:
        reason = (
            f"{head}, {level} bounds [{lower:+.3f}, {upper:+.3f}] straddle margin "
            f"{config.error_margin:.3f}, {amount}"
        )
    if stable.nan_outputs:
        reason += f" (stable produced {stable.nan_outputs} NaN output(s))"
    return CheckResult(NAME, status, reason, numbers)
