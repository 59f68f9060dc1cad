"""How long a step needs before its checks can decide: a rough, honest estimate.

From the current window's counts and its length, each check's sample rate (labels or
requests per second, in the slower arm) and the sample size it needs; the estimate is
the time until the slowest check has that sample. The formulas are in
docs/statistics.md ("Planning a step"); in short:

* accuracy and errors: the smallest ``n`` whose always-valid radius
  (``sequential.mixture_radius`` on the plug-in variance) is at most the margin, assuming
  the canary is exactly as good as stable (the case that needs proof; a true regression
  beyond the margin is usually caught sooner), and at least the check's minimum sample;
* latency: the minimum sample only (``min_requests``): a lower bound, since the width of
  the quantile bounds also depends on the latency distribution.

The result is advice for people (status and the ``Underpowered`` condition), never an
input to a decision.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np

from modeldeploy.operator.analysis.config import AnalysisConfig
from modeldeploy.operator.analysis.observations import Observations
from modeldeploy.operator.analysis.sequential import mixture_radius

_GRID = np.unique(np.geomspace(1, 1e9, 600).round().astype(np.int64))
_LIMIT_STEPS = 50


@dataclass(frozen=True)
class CheckPlan:
    """One check: the sample it needs, how much it has, and how fast it grows."""

    needed: int
    have: int
    per_second: float

    @property
    def seconds(self) -> float:
        """Seconds until ``needed`` at the current rate (inf: no samples arrive)."""
        missing = max(self.needed - self.have, 0)
        if missing == 0:
            return 0.0
        return missing / self.per_second if self.per_second > 0 else math.inf


@dataclass(frozen=True)
class Plan:
    """The slowest check decides when the step can end."""

    checks: dict[str, CheckPlan] = field(default_factory=dict)

    @property
    def seconds(self) -> float:
        return max((c.seconds for c in self.checks.values()), default=0.0)

    def to_dict(self) -> dict[str, object]:
        def finite(x: float) -> float | None:
            return round(x, 1) if math.isfinite(x) else None

        return {
            name: {
                "needed": c.needed,
                "have": c.have,
                "perSecond": round(c.per_second, 4),
                "seconds": finite(c.seconds),
            }
            for name, c in self.checks.items()
        }


def samples_for_margin(
    variance_per_sample: float, margin: float, config: AnalysisConfig, scale: float
) -> int:
    """Smallest ``n`` on the grid with an always-valid radius at most ``margin`` (0: never).

    The radius grows with the estimate's variance ``v / n``, so the answer is the first
    grid ``n`` at or above ``v / V*``, where ``V*`` (the largest variance whose radius fits
    the margin) depends on the configuration only and is found once (``_variance_limit``).
    The few grid points around that ``n`` are checked with the radius itself, so the
    result is exactly the first grid point that fits, without computing ~600 radii a tick.
    """
    if margin <= 0:
        return int(_GRID[-1])
    limit = _variance_limit(margin, scale, config.alpha)
    at = int(np.searchsorted(_GRID, variance_per_sample / limit)) if limit > 0 else len(_GRID)
    for i in (at, at + 1):  # the first that fits is normally ``at`` (float rounding: +1)
        if i >= len(_GRID) or not _fits(_GRID[i], variance_per_sample, margin, config, scale):
            continue
        if i == 0 or not _fits(_GRID[i - 1], variance_per_sample, margin, config, scale):
            return int(_GRID[i])
        break
    radius = mixture_radius(variance_per_sample / _GRID, scale, config.alpha)  # not expected
    ok = np.nonzero(radius <= margin)[0]
    return int(_GRID[ok[0]]) if ok.size else int(_GRID[-1])


def _fits(n: int, variance: float, margin: float, config: AnalysisConfig, scale: float) -> bool:
    return bool(float(mixture_radius(variance / float(n), scale, config.alpha)) <= margin)


@lru_cache(maxsize=256)
def _variance_limit(margin: float, scale: float, alpha: float) -> float:
    """The largest estimate variance whose always-valid radius is at most ``margin``."""
    lo, hi = -60.0, 10.0  # log10 of the variance
    for _ in range(_LIMIT_STEPS):
        mid = 0.5 * (lo + hi)
        if float(mixture_radius(10.0**mid, scale, alpha)) <= margin:
            lo = mid
        else:
            hi = mid
    return float(10.0**lo)


def _rate(count: int, seconds: float) -> float:
    return count / seconds if seconds > 0 else 0.0


def _accuracy(config: AnalysisConfig, obs: Observations, seconds: float) -> CheckPlan:
    scale, margin = config.accuracy_mixture_scale, config.accuracy_margin
    paired = obs.paired
    if config.paired != "unpaired" and paired is not None and paired.total > 0:
        # McNemar: the variance per pair is the discordance rate when both are equally good
        discordance = (paired.discordant + 1) / (paired.total + 2)
        needed = samples_for_margin(discordance, margin, config, scale)
        have = paired.total
    else:
        s, c = obs.stable, obs.canary
        p = (s.labelled_correct + c.labelled_correct + 1) / (
            s.labelled_total + c.labelled_total + 2
        )
        # two independent arms of n each: variance 2 p (1 - p) / n
        needed = samples_for_margin(2 * p * (1 - p), margin, config, scale)
        have = min(s.labelled_total, c.labelled_total)
    needed = max(needed, config.min_labels)
    return CheckPlan(needed, have, _rate(have, seconds))


def _errors(config: AnalysisConfig, obs: Observations, seconds: float) -> CheckPlan:
    s, c = obs.stable, obs.canary
    e = (s.errors + c.errors + 1) / (s.served + c.served + 2)
    needed = samples_for_margin(
        2 * e * (1 - e), config.error_margin, config, config.accuracy_mixture_scale
    )
    have = min(s.served, c.served)
    needed = max(needed, config.min_requests_for_errors)
    return CheckPlan(needed, have, _rate(have, seconds))


def _latency(config: AnalysisConfig, obs: Observations, seconds: float) -> CheckPlan:
    counts = [h.count if h is not None else 0 for h in (obs.stable.latency, obs.canary.latency)]
    have = min(counts)
    return CheckPlan(config.min_requests, have, _rate(have, seconds))


_PLANNERS = {"accuracy": _accuracy, "errors": _errors, "latency": _latency}


def plan(config: AnalysisConfig, observations: Observations, window_seconds: float) -> Plan:
    """Each configured check's plan from one window of ``window_seconds``."""
    return Plan(
        {name: _PLANNERS[name](config, observations, window_seconds) for name in config.checks}
    )
