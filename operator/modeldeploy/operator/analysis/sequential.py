"""Always-valid confidence bounds: the statistics behind every check (pure math, numpy).

Two constructions, both mixture martingales closed by Ville's inequality, so a bound at
level ``alpha`` holds at every look simultaneously, however often the operator checks:

* ``mixture_radius``: the one-sided normal-mixture boundary (Robbins; the mSPRT of
  Johari et al., "Always valid inference", 2017/2022) for an estimate with variance ``v``.
  Used for differences of proportions (accuracy unpaired and paired, error rates) with a
  plug-in variance, which makes it an asymptotic confidence sequence (Waudby-Smith et al.,
  "Time-uniform central limit theory", 2021): hence the minimum-sample rules.
* ``binomial_count_bounds``: the exact beta-binomial mixture boundary (Howard et al.,
  "Time-uniform, nonparametric, nonasymptotic confidence sequences", 2021) for how many
  of ``n`` requests fall at or below a fixed quantile. It turns order statistics into
  time-uniform quantile bounds (Howard & Ramdas, "Sequential estimation of quantiles",
  2022) with no approximation.

All functions broadcast over numpy arrays, so the simulation benchmark runs the exact
code the operator runs.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from functools import lru_cache

import numpy as np
import numpy.typing as npt
from scipy.special import betainc, betaincc, betaln, log_ndtr

_BISECTION_STEPS = 60


def mixture_radius(variance: npt.ArrayLike, scale: float, alpha: float) -> np.ndarray:
    """One-sided always-valid radius ``b`` for an estimate ``x`` with variance ``variance``.

    The half-normal mixture (mixing scale ``scale`` on the effect) of Gaussian likelihood
    ratios against the null ``theta0`` is::

        2 * sqrt(v / (v + s^2)) * exp(k u^2 / 2) * Phi(u sqrt(k)),  k = s^2 / (v (v + s^2))

    with ``u = |x - theta0|`` on the tested side. The bound is the ``u`` where it reaches
    ``1/alpha``; the one-sided bound ``x + b`` (or ``x - b``) then holds at every look with
    probability at least ``1 - alpha``. Infinite variance gives an infinite radius.
    """
    v = np.asarray(variance, dtype=float)
    s2 = float(scale) ** 2
    target = math.log(1.0 / alpha)
    if v.ndim == 0:  # one estimate (every check, every tick): the same steps on floats
        return np.asarray(_scalar_radius(float(v), s2, target))
    finite = np.isfinite(v) & (v > 0)
    v_safe = np.where(finite, v, 1.0)
    k = s2 / (v_safe * (v_safe + s2))
    log_shrink = 0.5 * np.log(v_safe / (v_safe + s2))

    def log_ratio(u: np.ndarray) -> np.ndarray:
        return math.log(2.0) + log_shrink + 0.5 * k * u * u + log_ndtr(u * np.sqrt(k))

    # The two-sided mixture boundary is always beyond the root: bracket [0, hi].
    lo = np.zeros_like(v_safe)
    hi = np.sqrt((2.0 * target - 2.0 * log_shrink) / k)
    for _ in range(_BISECTION_STEPS):
        mid = 0.5 * (lo + hi)
        above = log_ratio(mid) >= target
        hi = np.where(above, mid, hi)
        lo = np.where(above, lo, mid)
    radius = np.where(finite, hi, np.inf)
    return radius


def _scalar_radius(v: float, s2: float, target: float) -> float:
    """``mixture_radius`` for one variance, in Python floats: numpy's per-call overhead on
    0-d arrays made the same 60 bisection steps cost ~15x more."""
    if not (math.isfinite(v) and v > 0):
        return math.inf
    k = s2 / (v * (v + s2))
    log_shrink = 0.5 * math.log(v / (v + s2))
    base, root_k = math.log(2.0) + log_shrink, math.sqrt(k)
    lo, hi = 0.0, math.sqrt((2.0 * target - 2.0 * log_shrink) / k)
    for _ in range(_BISECTION_STEPS):
        mid = 0.5 * (lo + hi)
        if base + 0.5 * k * mid * mid + float(log_ndtr(mid * root_k)) >= target:
            hi = mid
        else:
            lo = mid
    return hi


def _smoothed(successes: np.ndarray, trials: np.ndarray) -> np.ndarray:
    """(x + 1) / (n + 2): keeps the plug-in variance positive when all or none succeed."""
    return (successes + 1.0) / (trials + 2.0)


def unpaired_difference(
    x_a: npt.ArrayLike,
    n_a: npt.ArrayLike,
    x_b: npt.ArrayLike,
    n_b: npt.ArrayLike,
    *,
    alpha: float,
    scale: float,
) -> tuple[np.ndarray, np.ndarray]:
    """Estimate and always-valid one-sided radius for ``p_a - p_b`` from two independent arms.

    Variance of the estimate: ``p_a q_a / n_a + p_b q_b / n_b`` (smoothed plug-in).
    With no trials in an arm the estimate is NaN and the radius infinite.
    """
    estimate, variance = unpaired_variance(x_a, n_a, x_b, n_b)
    return estimate, mixture_radius(variance, scale, alpha)


def paired_difference(
    a_only: npt.ArrayLike,
    b_only: npt.ArrayLike,
    pairs: npt.ArrayLike,
    *,
    alpha: float,
    scale: float,
) -> tuple[np.ndarray, np.ndarray]:
    """Estimate and radius for ``p_a - p_b`` from paired outcomes (McNemar's table).

    Each pair contributes ``+1`` (only a right), ``-1`` (only b right) or ``0``; only the
    discordant pairs move the estimate. Variance per pair: ``pi_d - d^2`` where ``pi_d``
    is the (smoothed) discordance rate, McNemar's variance.
    """
    estimate, variance = paired_variance(a_only, b_only, pairs)
    return estimate, mixture_radius(variance, scale, alpha)


def combined_difference(
    parts: Sequence[tuple[npt.ArrayLike, npt.ArrayLike]], *, alpha: float, scale: float
) -> tuple[np.ndarray, np.ndarray]:
    """One estimate and radius from independent estimates ``(estimate, variance)`` of the
    same difference: the inverse-variance weighted mean, variance ``1 / sum(1 / v_i)``.

    Used for paired evidence on the pairs plus unpaired evidence on the disjoint rest of
    the labels. The combined variance is below every part's, so adding a part (more data)
    never widens the bound. Parts with infinite variance (no data) get weight 0.
    """
    estimates = [np.asarray(e, dtype=float) for e, _ in parts]
    variances = [np.asarray(v, dtype=float) for _, v in parts]
    with np.errstate(divide="ignore", invalid="ignore"):
        weights = [np.where(np.isfinite(v) & (v > 0), 1.0 / v, 0.0) for v in variances]
        total = sum(weights, np.zeros(()))
        weighted = sum(
            (
                np.where(w > 0, w * np.nan_to_num(e), 0.0)
                for w, e in zip(weights, estimates, strict=True)
            ),
            np.zeros(()),
        )
        estimate = np.where(total > 0, weighted / total, np.nan)
        variance = np.where(total > 0, 1.0 / total, np.inf)
    return estimate, mixture_radius(variance, scale, alpha)


def unpaired_variance(
    x_a: npt.ArrayLike, n_a: npt.ArrayLike, x_b: npt.ArrayLike, n_b: npt.ArrayLike
) -> tuple[np.ndarray, np.ndarray]:
    """``(p_a - p_b, variance)`` of two independent proportions (smoothed plug-in)."""
    xa, na, xb, nb = (np.asarray(a, dtype=float) for a in (x_a, n_a, x_b, n_b))
    with np.errstate(divide="ignore", invalid="ignore"):
        estimate = np.where((na > 0) & (nb > 0), xa / na - xb / nb, np.nan)
        pa, pb = _smoothed(xa, na), _smoothed(xb, nb)
        variance = np.where((na > 0) & (nb > 0), pa * (1 - pa) / na + pb * (1 - pb) / nb, np.inf)
    return estimate, variance


def paired_variance(
    a_only: npt.ArrayLike, b_only: npt.ArrayLike, pairs: npt.ArrayLike
) -> tuple[np.ndarray, np.ndarray]:
    """``(p_a - p_b, variance)`` from McNemar's table (see ``paired_difference``)."""
    a, b, n = (np.asarray(v, dtype=float) for v in (a_only, b_only, pairs))
    with np.errstate(divide="ignore", invalid="ignore"):
        estimate = np.where(n > 0, (a - b) / n, np.nan)
        discordance = _smoothed(a + b, n)
        d = np.nan_to_num(estimate)
        variance = np.where(n > 0, np.maximum(discordance - d * d, 1.0 / (n + 2.0)) / n, np.inf)
    return estimate, variance


def step_alpha(alpha: float, step: int) -> float:
    """The share of ``alpha`` spent on traffic step ``step`` (0-based) of one rollout.

    ``alpha * 6 / (pi^2 (step + 1)^2)``: 61% of alpha on the first step, 15% on the second,
    6.8% on the third, ...; the sum over any number of steps is at most ``alpha``, so a
    check that restarts its experiment each step still falsely fails at most once in
    ``1 / alpha`` rollouts (union bound over steps).
    """
    if step < 0:
        raise ValueError("step must be >= 0")
    return alpha * 6.0 / (math.pi**2 * (step + 1) ** 2)


def _log_one_sided_ratio(s: int, n: int, p: float, a: float, b: float, below: bool) -> float:
    """log of the one-sided beta-mixture likelihood ratio after ``s`` successes in ``n``.

    The mixture is ``Beta(a, b)`` restricted to success rates below ``p`` (``below``) or
    above it; a mixture of exponentials of linear functions of ``s``, hence convex in ``s``.
    """
    if below:
        tail_post = betainc(a + s, b + n - s, p)
        tail_prior = betainc(a, b, p)
    else:
        tail_post = betaincc(a + s, b + n - s, p)
        tail_prior = betaincc(a, b, p)
    if tail_post <= 0.0:
        return -math.inf
    log_mix = betaln(a + s, b + n - s) + math.log(tail_post) - betaln(a, b) - math.log(tail_prior)
    return float(log_mix - s * math.log(p) - (n - s) * math.log1p(-p))


@lru_cache(maxsize=8192)
def binomial_count_bounds(n: int, p: float, alpha: float, weight: float) -> tuple[int, int]:
    """Always-valid one-sided bounds ``lo`` and ``hi`` on a Binomial(n, p) count.

    Each side is a one-sided beta-binomial mixture martingale (prior ``Beta(p w, (1-p) w)``
    restricted to rates below, respectively above, ``p``), closed by Ville's inequality:
    the count drops below ``lo`` at *any* ``n`` with probability at most ``alpha``, and
    likewise rises above ``hi``. ``weight`` (``w``, in pseudo-trials) only tunes for which
    ``n`` the bounds are tightest; it does not affect validity. A rate below (above) ``p``
    makes the lower (upper) crossing only likelier (less likely), so the bounds stay valid
    for composite nulls ``rate >= p`` and ``rate <= p``.
    """
    if n <= 0:
        return 0, 0
    a, b = p * weight, (1.0 - p) * weight
    target = math.log(1.0 / alpha)
    centre = min(max(math.floor(n * p), 0), n)

    def rejected(s: int, below: bool) -> bool:
        return _log_one_sided_ratio(s, n, p, a, b, below) >= target

    # lower end: smallest s in [0, centre] not rejected (convexity makes this an interval)
    if not rejected(0, True):
        lo = 0
    elif rejected(centre, True):  # pragma: no cover - impossible for alpha < 1
        lo = centre + 1
    else:
        left, right = 0, centre
        while right - left > 1:
            mid = (left + right) // 2
            if rejected(mid, True):
                left = mid
            else:
                right = mid
        lo = right
    # upper end: largest s in [centre, n] not rejected
    if not rejected(n, False):
        hi = n
    else:
        left, right = centre, n
        while right - left > 1:
            mid = (left + right) // 2
            if rejected(mid, False):
                right = mid
            else:
                left = mid
        hi = left
    return lo, hi
