"""Always-valid bounds on how far the canary's shares moved from stable's (pure, numpy).

A label-free signal is a set of shares that sum to one: the prediction mix (share of each
class), or a histogram (share of requests in each bucket). "How far did it move" is the
largest absolute change of any share, ``max_k |p_canary,k - p_stable,k|``.

Each share difference gets a two-sided always-valid interval from the mixture boundary of
``sequential`` (the same one the accuracy and error checks use), each side at
``alpha / (2 K)`` for ``K`` tested categories (Bonferroni). With probability at least
``1 - alpha`` every interval covers its difference at every look, so the interval for the
maximum, ``[max_k lower|d_k|, max_k upper|d_k|]``, does too. With two categories the shares
mirror each other (``d_1 = -d_2``), so one is tested at the full ``alpha / 2`` per side.

Where both arms scored the same inputs (paired traffic), the table of (stable class,
canary class) gives a second estimate per class from McNemar's variance: only inputs whose
answer changed move it, so a shift made of flipped answers is seen in far fewer requests.

When the table's per-class counts (what each arm answered on the pairs) come with it, the
pairs are taken out of each arm's counts and the two *disjoint* parts, McNemar on the pairs
and the unpaired difference on the rest, are combined by inverse-variance weighting (as the
accuracy check combines paired and unpaired labels, ``sequential.combined_difference``) into
one estimate with one interval at the full ``alpha``. With a sample of the traffic paired
(KServe's joiner re-scores a share of each arm's requests on the other) this is what lets
the pairs count: the old way, two intervals at ``alpha / 2`` each, intersected, wasted half
the level on whichever was the weaker. Without the per-class counts the two intervals are
still intersected (both hold together with probability ``1 - alpha``).

Every function broadcasts over leading axes, so the benchmark runs the operator's code on
thousands of simulated rollouts at once.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from modeldeploy.operator.analysis.sequential import (
    mixture_radius,
    paired_variance,
    unpaired_variance,
)

Flips = tuple[npt.ArrayLike, ...]
"""``(only_canary, only_stable, pairs)`` or ``(..., paired_canary, paired_stable)``."""


def categories_tested(k: int) -> int:
    """How many share differences are tested: one when two shares mirror each other."""
    return 1 if k == 2 else max(k, 1)


def signed_intervals(
    canary: npt.ArrayLike,
    stable: npt.ArrayLike,
    *,
    alpha: float,
    scale: float,
    flips: Flips | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per category: estimate, lower and upper bound of ``share_canary - share_stable``.

    ``canary``, ``stable``: counts per category (last axis). ``flips``, when paired data
    exist: per category, the pairs where only the canary said it, where only stable said
    it, and the number of pairs (broadcast over categories); optionally followed by, per
    category, the pairs where the canary said it and where stable said it (the table's
    margins), which makes the evidence one combined interval (module docstring).
    """
    c = np.asarray(canary, dtype=float)
    s = np.asarray(stable, dtype=float)
    k = c.shape[-1]
    n_c = c.sum(axis=-1, keepdims=True)
    n_s = s.sum(axis=-1, keepdims=True)
    per_side = alpha / (2.0 * categories_tested(k))
    if flips is not None and len(flips) == 5:
        estimate, variance = _combined(c, s, flips)
        radius = mixture_radius(variance, scale, per_side)
        return estimate, estimate - radius, estimate + radius
    if flips is not None:
        per_side /= 2.0
    estimate, variance = unpaired_variance(c, n_c, s, n_s)
    radius = mixture_radius(variance, scale, per_side)
    lower, upper = estimate - radius, estimate + radius
    if flips is not None:
        only_c, only_s, pairs = (np.asarray(v, dtype=float) for v in flips)
        p_est, p_var = paired_variance(only_c, only_s, pairs)
        p_rad = mixture_radius(p_var, scale, per_side)
        # nan-aware: an arm without data leaves the other interval standing
        lower = np.fmax(lower, p_est - p_rad)
        upper = np.fmin(upper, p_est + p_rad)
        estimate = np.where(np.isfinite(p_est), p_est, estimate)
    return estimate, lower, upper


def _combined(c: np.ndarray, s: np.ndarray, flips: Flips) -> tuple[np.ndarray, np.ndarray]:
    """Estimate and variance from the pairs (McNemar) and the rest of each arm's counts
    (unpaired), inverse-variance weighted; a part without data gets weight 0."""
    only_c, only_s, pairs, paired_c, paired_s = (np.asarray(v, dtype=float) for v in flips)
    p_est, p_var = paired_variance(only_c, only_s, pairs)
    # Counters read at slightly different moments can leave a margin above its arm's count.
    rest_c, rest_s = np.maximum(c - paired_c, 0.0), np.maximum(s - paired_s, 0.0)
    n_c, n_s = rest_c.sum(axis=-1, keepdims=True), rest_s.sum(axis=-1, keepdims=True)
    u_est, u_var = unpaired_variance(rest_c, n_c, rest_s, n_s)
    with np.errstate(divide="ignore", invalid="ignore"):
        w_p = np.where(np.isfinite(p_var) & (p_var > 0), 1.0 / p_var, 0.0)
        w_u = np.where(np.isfinite(u_var) & (u_var > 0), 1.0 / u_var, 0.0)
        total = w_p + w_u
        weighted = w_p * np.nan_to_num(p_est) + w_u * np.nan_to_num(u_est)
        estimate = np.where(total > 0, weighted / total, np.nan)
        variance = np.where(total > 0, 1.0 / total, np.inf)
    return estimate, variance


def absolute_intervals(lower: np.ndarray, upper: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The interval for ``|d|`` implied by an interval ``[lower, upper]`` for ``d``."""
    lo_abs = np.where(lower > 0, lower, np.where(upper < 0, -upper, 0.0))
    hi_abs = np.maximum(np.abs(lower), np.abs(upper))
    return lo_abs, hi_abs


def max_shift_interval(
    canary: npt.ArrayLike,
    stable: npt.ArrayLike,
    *,
    alpha: float,
    scale: float,
    flips: Flips | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``(lower, upper)`` for the largest absolute share shift, plus per-category estimates
    and the index of the category whose bound is largest (what a reason names).

    Lower and upper are NaN where an arm has no counts at all (nothing to say).
    """
    estimate, lower, upper = signed_intervals(canary, stable, alpha=alpha, scale=scale, flips=flips)
    lo_abs, hi_abs = absolute_intervals(lower, upper)
    worst = np.argmax(np.where(np.isnan(lo_abs), -np.inf, lo_abs + 1e-12 * hi_abs), axis=-1)
    lo_max = np.max(lo_abs, axis=-1)
    hi_max = np.max(hi_abs, axis=-1)
    return lo_max, hi_max, estimate, worst


def proportion_interval(
    successes: npt.ArrayLike, trials: npt.ArrayLike, *, alpha: float, scale: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Estimate and one-sided always-valid bounds (each at ``alpha``) of one proportion."""
    x = np.asarray(successes, dtype=float)
    n = np.asarray(trials, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        estimate = np.where(n > 0, x / n, np.nan)
        p = (x + 1.0) / (n + 2.0)
        variance = np.where(n > 0, p * (1.0 - p) / n, np.inf)
    radius = mixture_radius(variance, scale, alpha)
    return estimate, estimate - radius, estimate + radius
