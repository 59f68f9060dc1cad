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
canary class) gives a second interval per class from McNemar's variance: only inputs whose
answer changed move it, so a shift made of flipped answers is seen in far fewer requests.
The two intervals then get ``alpha / 2`` each and are intersected (both hold together with
probability ``1 - alpha``).

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


def categories_tested(k: int) -> int:
    """How many share differences are tested: one when two shares mirror each other."""
    return 1 if k == 2 else max(k, 1)


def signed_intervals(
    canary: npt.ArrayLike,
    stable: npt.ArrayLike,
    *,
    alpha: float,
    scale: float,
    flips: tuple[npt.ArrayLike, npt.ArrayLike, npt.ArrayLike] | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per category: estimate, lower and upper bound of ``share_canary - share_stable``.

    ``canary``, ``stable``: counts per category (last axis). ``flips``, when paired data
    exist: per category, the pairs where only the canary said it, where only stable said
    it, and the number of pairs (broadcast over categories).
    """
    c = np.asarray(canary, dtype=float)
    s = np.asarray(stable, dtype=float)
    k = c.shape[-1]
    n_c = c.sum(axis=-1, keepdims=True)
    n_s = s.sum(axis=-1, keepdims=True)
    per_side = alpha / (2.0 * categories_tested(k))
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
    flips: tuple[npt.ArrayLike, npt.ArrayLike, npt.ArrayLike] | None = None,
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
