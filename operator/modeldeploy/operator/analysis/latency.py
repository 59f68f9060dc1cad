"""P99 latency: the canary's tail against stable's, at a common threshold, plus an optional cap.

**What is compared.** "The canary's P99 is more than ``1 + tolerance`` times stable's" is the
same statement as "more than 1% of canary requests are slower than ``(1 + tolerance) x e``,
where 1% of stable requests are slower than ``e``" with ``e`` stable's P99. So the check
compares two *shares* at one threshold, a two-sample difference of proportions, instead of two
quantile bounds: one joint interval instead of one per arm, and no quantisation of each arm's
P99 to a bucket. At 10,000 requests per arm (sigma 0.5), a canary whose top 2% is 25% slower
has 1.9% of its requests above ``1.1025 x e`` against stable's 1.0% above ``e`` (z about 5),
and an identical canary has 0.6% (z about 3.3, growing with the square root of the requests).

**Thresholds on bucket edges.** ``e`` is a stable bucket edge. The canary's threshold is a
canary edge: for FAIL the first one at or above ``(1 + tolerance) x e`` (so the requests above
it are surely slower than ``(1 + tolerance) x e``), for PASS the last one at or below it (so at
most that many are). With the contract's ratio-1.05 buckets the two coincide only for
tolerances ``1.05**k - 1`` (0.05, 0.1025, 0.157625, ...): any other tolerance is rounded up
when failing and down when passing, which costs power, never validity. Edges rounded by an
exporter are matched within ``EDGE_SLACK``.

**Which ``e``: a threshold chosen from the data.** ``e`` is the stable edge at stable's
*observed* quantile in this window (the first edge with at least ``quantile x n`` requests at or
below it), and the check waits until stable's always-valid quantile bounds close above
(``quantile_bounds``), so the edge sits in a tail that has requests. For a fixed ``e`` the
two-sample bound (``sequential.unpaired_difference``, a normal-mixture confidence sequence
with a plug-in variance) holds at every look at level ``alpha``. ``e`` is not fixed: it moves
between the two or three edges around stable's true quantile as the window grows. By the
Bahadur representation of a sample quantile, the share difference at the observed edge equals
the one at the true quantile to first order (the stable share's own noise moves into the
choice of edge), so the test keeps its level asymptotically; it is not a finite-sample theorem.
It is checked by simulation at the hardest null, a canary exactly ``1 + tolerance`` slower at
every quantile (every edge's null holds with equality), with a look every 100 requests
(``tests/unit/analysis/test_latency_power.py``; ``bench/results.json``,
``analysis.figures.latency``).
A variant that is valid by construction (fail only if the test fails at *every* edge that
stable's bounds leave possible) caught 80% instead of 98% of +25% tails at 10,000 requests.

What is judged is the quantile at stable's level of that edge (the P99 up to one bucket):
"the canary's quantile at most ``1 + tolerance`` times stable's". A tail that shifts shifts
the quantiles around the P99 alike.

Latency depends on load, so its window restarts with every traffic step;
``sequential.step_alpha`` spends the check's alpha across steps so the whole rollout keeps
one level-alpha guarantee (per error type: false rollback, false pass). Where both arms serve
the same requests at every step (local mode), the window spans the steps and
``observations.step`` is the step it began at, so one experiment keeps that step's alpha.
The cap compares the canary's own always-valid P99 bounds with ``p99_cap_seconds``.

Everything below broadcasts over leading array axes, so the simulation benchmark
(``modeldeploy.tools.bench.simulation``) runs this exact code on thousands of rollouts.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from modeldeploy.operator.analysis.config import AnalysisConfig
from modeldeploy.operator.analysis.observations import LatencyHistogram, Observations
from modeldeploy.operator.analysis.sequential import (
    binomial_count_bounds,
    step_alpha,
    unpaired_difference,
)
from modeldeploy.operator.analysis.verdict import CheckResult, CheckStatus, crossed, judge

NAME = "latency"
EDGE_SLACK = 1e-3  # relative: edge rounding (1 us at 1 ms), well under a bucket ratio
TAIL_SCALE = 0.5
"""Mixture scale of the two-sample test, as a fraction of the tail share ``1 - quantile``
(0.005 at P99): the share difference the test detects fastest. Tuning only, not a limit."""


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
    """Always-valid ``(lower, upper)`` bounds on one arm's latency quantile, in seconds.

    From order statistics: with ``n`` requests the number at or below the true quantile is
    Binomial(n, quantile), and ``binomial_count_bounds`` bounds that count at every look.
    Both ends are bucket edges, so buckets only widen the bounds. Each end holds with
    probability ``1 - alpha``.
    """
    n = histogram.count
    if n == 0:
        return 0.0, math.inf
    lo, hi = binomial_count_bounds(n, quantile, alpha, weight)
    lower, upper = bounds_from_counts(histogram.bounds, histogram.cumulative, lo, hi)
    return float(lower), float(upper)


def canary_thresholds(
    stable_bounds: npt.ArrayLike, canary_bounds: npt.ArrayLike, tolerance: float
) -> tuple[np.ndarray, np.ndarray]:
    """For each stable edge ``e``: the canary edge indices for FAIL and for PASS.

    FAIL: the first canary edge at or above ``(1 + tolerance) e`` (len(canary) if none);
    PASS: the last one at or below it (-1 if none). Matched within ``EDGE_SLACK``.
    """
    stable = np.asarray(stable_bounds, dtype=float)
    canary = np.asarray(canary_bounds, dtype=float)
    with np.errstate(invalid="ignore"):
        target = stable * (1.0 + tolerance)
    fail = np.searchsorted(canary, target * (1.0 - EDGE_SLACK), side="left")
    passing = np.searchsorted(canary, target * (1.0 + EDGE_SLACK), side="right") - 1
    return fail, passing


def _count_bounds(n: np.ndarray, quantile: float, alpha: float, weight: float) -> np.ndarray:
    """``binomial_count_bounds`` over an array of counts (cached per distinct count)."""
    flat = n.reshape(-1).astype(np.int64)
    out = np.empty((flat.size, 2), dtype=np.int64)
    for value in np.unique(flat):
        out[flat == value] = binomial_count_bounds(int(value), quantile, alpha, weight)
    return out.reshape(*n.shape, 2)


@dataclass(frozen=True)
class TailTest:
    """The tail comparison for arrays of windows (leading axes); see the module docstring.

    ``failed`` / ``passed``: the outcome per window. ``edge``: the index of the stable edge
    at stable's observed quantile (-1 while stable's quantile is not bounded above).
    Per-window figures at that edge: counts above the thresholds, and the bounds on the
    difference of shares (canary minus stable) at the fail and at the pass threshold.
    """

    failed: np.ndarray
    passed: np.ndarray
    stable_lower: np.ndarray
    stable_upper: np.ndarray
    edge: np.ndarray
    stable_above: np.ndarray
    canary_above_fail: np.ndarray
    canary_above_pass: np.ndarray
    fail_lower: np.ndarray
    pass_upper: np.ndarray
    fail_index: np.ndarray  # canary edge index per window
    pass_index: np.ndarray


def tail_test(
    stable_bounds: npt.ArrayLike,
    stable_cumulative: npt.ArrayLike,
    canary_bounds: npt.ArrayLike,
    canary_cumulative: npt.ArrayLike,
    *,
    tolerance: float,
    quantile: float,
    alpha: float,
    weight: float,
) -> TailTest:
    """Compare the arms' shares above a common threshold at stable's observed quantile edge.

    Cumulative counts have the buckets on the last axis; leading axes are windows.
    """
    s_bounds = np.asarray(stable_bounds, dtype=float)
    c_bounds = np.asarray(canary_bounds, dtype=float)
    s_cum = np.asarray(stable_cumulative, dtype=np.int64)
    c_cum = np.asarray(canary_cumulative, dtype=np.int64)
    n_s, n_c = s_cum[..., -1], c_cum[..., -1]

    counts = _count_bounds(n_s, quantile, alpha, weight)
    lower, upper = bounds_from_counts(s_bounds, s_cum, counts[..., 0], counts[..., 1])
    # the observed quantile's edge (the 1e-9 keeps float noise in quantile x n from
    # skipping a whole request)
    needed = np.ceil(quantile * n_s - 1e-9)
    observed = np.argmax(s_cum >= needed[..., None], axis=-1)
    usable = np.isfinite(upper) & np.isfinite(s_bounds[observed]) & (n_s > 0) & (n_c > 0)
    edge = np.where(usable, observed, -1)
    fail_all, pass_all = canary_thresholds(s_bounds, c_bounds, tolerance)
    fail_index, pass_index = fail_all[observed], pass_all[observed]

    def above(cum: np.ndarray, total: np.ndarray, index: np.ndarray) -> np.ndarray:
        size = cum.shape[-1]
        at = np.take_along_axis(cum, np.clip(index, 0, size - 1)[..., None], axis=-1)[..., 0]
        return np.where(index < 0, total, np.where(index >= size, 0, total - at))

    stable_above = above(s_cum, n_s, observed)
    canary_fail = above(c_cum, n_c, fail_index)
    canary_pass = above(c_cum, n_c, pass_index)
    scale = TAIL_SCALE * (1.0 - quantile)
    est_f, rad_f = unpaired_difference(
        canary_fail, n_c, stable_above, n_s, alpha=alpha, scale=scale
    )
    est_p, rad_p = unpaired_difference(
        canary_pass, n_c, stable_above, n_s, alpha=alpha, scale=scale
    )
    fail_lower = np.where(usable, est_f - rad_f, -np.inf)
    pass_upper = np.where(usable, est_p + rad_p, np.inf)
    failed, passed = crossed(fail_lower, pass_upper, 0.0)
    return TailTest(
        failed,
        passed,
        lower,
        upper,
        edge,
        stable_above,
        canary_fail,
        canary_pass,
        fail_lower,
        pass_upper,
        fail_index,
        pass_index,
    )


def _ms(seconds: float) -> str:
    return "unbounded" if math.isinf(seconds) else f"{seconds * 1000:.1f} ms"


def _share(count: float, total: float) -> str:
    return f"{count / total:.2%}" if total else "n/a"


def check_latency(config: AnalysisConfig, observations: Observations) -> CheckResult:
    """Judge the canary's tail against stable's (same window) and the absolute cap."""
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
    alpha = step_alpha(config.alpha, observations.step)
    q, w = config.latency_quantile, config.quantile_mixture_weight
    test = tail_test(
        stable.bounds,
        stable.cumulative,
        canary.bounds,
        canary.cumulative,
        tolerance=config.p99_tolerance,
        quantile=q,
        alpha=alpha,
        weight=w,
    )
    s_lower, s_upper = float(test.stable_lower), float(test.stable_upper)
    numbers.update(alpha=alpha, step=observations.step, stable_lower_s=s_lower)
    numbers["stable_upper_s"] = s_upper
    amount = f"{n_c} canary / {n_s} stable requests"
    statuses: list[CheckStatus] = []
    edge = int(test.edge)
    if edge < 0:
        relative = CheckStatus.UNDECIDED
        relative_text = (
            f"stable {q_name} not yet bounded ({_ms(s_lower)} to {_ms(s_upper)}): too few "
            "requests in its tail"
        )
    else:
        relative = (
            CheckStatus.FAIL
            if bool(test.failed)
            else CheckStatus.PASS
            if bool(test.passed)
            else CheckStatus.UNDECIDED
        )
        relative_text, more = _tail_reason(test, stable, canary, edge, relative, q_name, alpha)
        numbers.update(more)
    statuses.append(relative)
    cap = config.p99_cap_seconds
    cap_status = CheckStatus.PASS
    c_lower = 0.0
    if cap is not None:
        c_lower, c_upper = quantile_bounds(canary, q, alpha / 2, w)
        numbers.update(canary_lower_s=c_lower, canary_upper_s=c_upper)
        cap_status = judge(c_lower, c_upper, cap * (1.0 - EDGE_SLACK))
        statuses.append(cap_status)
    if cap is not None and cap_status is CheckStatus.FAIL:
        status = CheckStatus.FAIL
        reason = f"canary {q_name} above {_ms(c_lower)}, over the cap {_ms(cap)}, {amount}"
    elif relative is CheckStatus.FAIL:
        status, reason = CheckStatus.FAIL, f"{relative_text}, {amount}"
    elif all(s is CheckStatus.PASS for s in statuses):
        status, reason = CheckStatus.PASS, f"{relative_text}, {amount}"
    else:
        status = CheckStatus.UNDECIDED
        cap_text = (
            f"; cap {_ms(cap)} not yet shown"
            if cap is not None and cap_status is not CheckStatus.PASS
            else ""
        )
        reason = f"{relative_text}{cap_text}, {amount}"
    return CheckResult(NAME, status, reason, numbers)


def _tail_reason(
    test: TailTest,
    stable: LatencyHistogram,
    canary: LatencyHistogram,
    edge: int,
    relative: CheckStatus,
    q_name: str,
    alpha: float,
) -> tuple[str, dict[str, object]]:
    """The sentence and numbers for the tail comparison at stable's observed quantile edge."""
    n_s, n_c = stable.count, canary.count
    e = stable.bounds[edge]
    fail_i, pass_i = int(test.fail_index), int(test.pass_index)
    fail_t = canary.bounds[fail_i] if fail_i < len(canary.bounds) else math.inf
    pass_t = canary.bounds[pass_i] if pass_i >= 0 else 0.0
    s_above = int(test.stable_above)
    c_fail, c_pass = int(test.canary_above_fail), int(test.canary_above_pass)
    lower, upper = float(test.fail_lower), float(test.pass_upper)

    def slower(count: int, threshold: float) -> str:
        return (
            f"{_share(count, n_c)} of canary requests were slower than {_ms(threshold)} "
            f"({threshold / e:.4g} x {_ms(e)}, the edge at stable's observed {q_name}), "
            f"against {_share(s_above, n_s)} of stable's"
        )

    confidence = f"at {1 - alpha:.1%} confidence"
    if relative is CheckStatus.FAIL:
        text = (
            f"{slower(c_fail, fail_t)}: more, {confidence} (by at least {lower * 100:.2f} points)"
        )
    elif relative is CheckStatus.PASS:
        text = (
            f"{slower(c_pass, pass_t)}: fewer, {confidence} (by at least {-upper * 100:.2f} points)"
        )
    else:
        text = (
            f"{slower(c_fail, fail_t)}: not yet separable, the difference is between "
            f"{lower * 100:+.2f} and {upper * 100:+.2f} points"
        )
        if pass_t != fail_t:
            text += f" (upper end at {_ms(pass_t)})"
    numbers: dict[str, object] = {
        "stable_edge_s": e,
        "stable_share_above": s_above / n_s,
        "canary_fail_threshold_s": fail_t,
        "canary_share_above_fail": c_fail / n_c,
        "canary_pass_threshold_s": pass_t,
        "canary_share_above_pass": c_pass / n_c,
        "difference_lower": lower,
        "difference_upper": upper,
    }
    return text, numbers
