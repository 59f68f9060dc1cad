"""P99 latency: canary against stable over the same window, plus an optional absolute cap.

Quantile bounds come from order statistics. With ``n`` requests, the number at or below
the true P99 is Binomial(n, 0.99); ``binomial_count_bounds`` gives always-valid bounds
``[lo, hi]`` on that count. So the true P99 is above every histogram bound with fewer
than ``lo`` requests at or below it (lower bound), and at or below the first histogram
bound with more than ``hi`` (upper bound). Both are bucket *edges*: bucket resolution
only makes the bounds wider, never wrong. Raw samples are a histogram with one edge per
distinct value, so the same code is exact for them.

The check then judges the log ratio of P99s, harm interval
``[log(L_canary / U_stable), log(U_canary / L_stable)]``, against ``log(1 + tolerance)``,
and the canary's ``[L, U]`` against the cap, both through ``verdict.judge``. Each arm's
bound uses half the alpha of this step, so a false rollback needs one of two events of
probability ``alpha_step / 2``. Latency depends on load, so its window restarts with every
traffic step; ``sequential.step_alpha`` spends the check's alpha across the steps so the
whole rollout keeps one level-alpha guarantee.

Bucket edges are rounded (to the microsecond in the contract), so the ratio of two edges
that are exactly ``(1 + tolerance)`` apart in theory can come out a hair below it. Limits
are therefore lowered by ``EDGE_SLACK`` (relative): far below one bucket ratio (1.05), so
it cannot turn a bucket's worth of doubt into a failure, but above any rounding.
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt

from modeldeploy.operator.analysis.config import AnalysisConfig
from modeldeploy.operator.analysis.observations import LatencyHistogram, Observations
from modeldeploy.operator.analysis.sequential import binomial_count_bounds, step_alpha
from modeldeploy.operator.analysis.verdict import CheckResult, CheckStatus, judge

NAME = "latency"
EDGE_SLACK = 1e-3  # relative: edge rounding (1 us at 1 ms), well under a bucket ratio


def bounds_from_counts(
    bounds: npt.ArrayLike, cumulative: npt.ArrayLike, lo: npt.ArrayLike, hi: npt.ArrayLike
) -> tuple[np.ndarray, np.ndarray]:
    """Vectorised quantile bounds from cumulative counts (last axis = buckets).

    lower: the largest bound with ``cumulative < lo`` (the quantile is above it), else 0.
    upper: the smallest bound with ``cumulative > hi`` (the quantile is at or below it),
    else infinity (too few requests in the tail to bound it).
    """
    edges = np.asarray(bounds, dtype=float)
    cum = np.asarray(cumulative)
    lo_a = np.asarray(lo)[..., None]
    hi_a = np.asarray(hi)[..., None]
    below = cum < lo_a  # True for a prefix of buckets (cumulative counts never decrease)
    n_below = below.sum(axis=-1)
    lower = np.where(n_below > 0, edges[np.maximum(n_below - 1, 0)], 0.0)
    above = cum > hi_a  # True for a suffix
    first_above = cum.shape[-1] - above.sum(axis=-1)
    upper = np.where(
        first_above < cum.shape[-1], edges[np.minimum(first_above, len(edges) - 1)], np.inf
    )
    return lower, upper


def quantile_bounds(
    histogram: LatencyHistogram, quantile: float, alpha: float, weight: float
) -> tuple[float, float]:
    """Always-valid ``(lower, upper)`` bounds on one arm's latency quantile, in seconds."""
    n = histogram.count
    if n == 0:
        return 0.0, math.inf
    lo, hi = binomial_count_bounds(n, quantile, alpha, weight)
    lower, upper = bounds_from_counts(histogram.bounds, histogram.cumulative, lo, hi)
    return float(lower), float(upper)


def _ms(seconds: float) -> str:
    return "unbounded" if math.isinf(seconds) else f"{seconds * 1000:.1f} ms"


def _log_ratio(a: float, b: float) -> float:
    if a <= 0 or math.isinf(b):
        return -math.inf
    if b <= 0 or math.isinf(a):
        return math.inf
    return math.log(a / b)


def check_latency(config: AnalysisConfig, observations: Observations) -> CheckResult:
    """Judge the canary's P99 against stable's (same window) and the absolute cap."""
    stable, canary = observations.stable.latency, observations.canary.latency
    q_name = f"P{config.latency_quantile * 100:g}"
    if stable is None or canary is None:
        missing = "stable" if stable is None else "canary"
        return CheckResult(
            NAME, CheckStatus.INCONCLUSIVE, f"no latency data from the {missing} arm"
        )
    n_s, n_c = stable.count, canary.count
    numbers: dict[str, object] = {
        "stable_requests": n_s,
        "canary_requests": n_c,
        "tolerance": config.p99_tolerance,
        "cap_seconds": config.p99_cap_seconds,
    }
    if min(n_s, n_c) < config.min_requests:
        return CheckResult(
            NAME,
            CheckStatus.INCONCLUSIVE,
            f"{n_c} canary and {n_s} stable requests, need {config.min_requests} per arm "
            f"before judging {q_name}",
            numbers,
        )
    half_alpha = step_alpha(config.alpha, observations.step) / 2
    q, w = config.latency_quantile, config.quantile_mixture_weight
    s_lower, s_upper = quantile_bounds(stable, q, half_alpha, w)
    c_lower, c_upper = quantile_bounds(canary, q, half_alpha, w)
    numbers.update(
        alpha=2 * half_alpha,
        step=observations.step,
        stable_lower_s=s_lower,
        stable_upper_s=s_upper,
        canary_lower_s=c_lower,
        canary_upper_s=c_upper,
    )
    limit = math.log1p(config.p99_tolerance) - math.log1p(EDGE_SLACK)
    relative = judge(_log_ratio(c_lower, s_upper), _log_ratio(c_upper, s_lower), limit)
    statuses = [relative]
    cap = config.p99_cap_seconds
    if cap is not None:
        statuses.append(judge(c_lower, c_upper, cap * (1.0 - EDGE_SLACK)))
    amount = f"{n_c} canary / {n_s} stable requests"
    limit_text = (
        f"stable {q_name} x {1 + config.p99_tolerance:g}"
        if config.p99_tolerance
        else f"stable {q_name}"
    )
    canary_range = f"canary {q_name} in [{_ms(c_lower)}, {_ms(c_upper)}]"
    stable_range = f"stable in [{_ms(s_lower)}, {_ms(s_upper)}]"
    if cap is not None and statuses[1] is CheckStatus.FAIL:
        status = CheckStatus.FAIL
        reason = f"canary {q_name} above {_ms(c_lower)}, over the cap {_ms(cap)}, {amount}"
    elif relative is CheckStatus.FAIL:
        status = CheckStatus.FAIL
        reason = f"{canary_range} exceeds {limit_text} ({stable_range}), {amount}"
    elif all(s is CheckStatus.PASS for s in statuses):
        status = CheckStatus.PASS
        reason = f"{canary_range} within {limit_text} ({stable_range}), {amount}"
    else:
        status = CheckStatus.UNDECIDED
        reason = f"{canary_range} vs {stable_range}: not yet separable from {limit_text}, {amount}"
    return CheckResult(NAME, status, reason, numbers)
