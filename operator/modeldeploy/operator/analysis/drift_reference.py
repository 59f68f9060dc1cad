"""Drift against a reference: the promoted version now, against itself when it was promoted.

When a canary is promoted, its label-free counts over the rollout window (what it
predicted, how sure it was, how long its inputs were) become that version's *reference*,
kept in the resource status so it survives operator restarts. Afterwards, the same counts
over a recent window of live traffic are compared with the reference by the same share
shift bounds as the canary checks (``drift_stats``): one figure per signal, the largest
share shift and its always-valid lower bound. These are exported as gauges; an alert
fires when a lower bound stays above a limit (the chart's PrometheusRule). Nothing here
changes a rollout: drift outside a rollout is for people to look at.

The reference is a fixed sample, not a population, so treating it as a second arm (its own
sampling noise included) is exactly the two-sample comparison the canary checks make.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from modeldeploy.operator.analysis.drift_stats import max_shift_interval
from modeldeploy.operator.analysis.sequential import mixture_radius, unpaired_variance

SIGNALS = ("predictions", "confidence", "input_tokens", "truncation")
_PREFIX = {"predictions": "p/", "confidence": "c/", "input_tokens": "t/"}
REFERENCE_KEYS = ("p/", "c/", "t/")


def reference_of(drift: Mapping[str, float]) -> dict[str, float]:
    """The compact reference kept in the status: an arm's label-free counters only."""
    return {k: v for k, v in sorted(drift.items()) if k.startswith(REFERENCE_KEYS) or k == "x"}


def _categories(drift: Mapping[str, float], prefix: str) -> dict[str, float]:
    """Per-category counts: per class, or per histogram bucket (from cumulative ``le``)."""
    items = {k[len(prefix) :]: v for k, v in drift.items() if k.startswith(prefix)}
    if prefix == "p/":
        return items
    ordered = sorted(items.items(), key=lambda kv: float(kv[0].replace("+Inf", "inf")))
    out, previous = {}, 0.0
    for le, cumulative in ordered:
        out[le] = cumulative - previous
        previous = cumulative
    return out


@dataclass(frozen=True)
class Shift:
    """One signal's shift from the reference: the estimate and its always-valid bounds."""

    signal: str
    estimate: float  # largest share shift (a rate increase for truncation), 0-1
    lower: float
    upper: float
    requests: int

    def to_dict(self) -> dict[str, Any]:
        return {
            "estimate": round(self.estimate, 6),
            "lower": round(self.lower, 6),
            "upper": round(self.upper, 6),
            "requests": self.requests,
        }


def shifts(
    reference: Mapping[str, float],
    current: Mapping[str, float],
    *,
    alpha: float,
    scale: float,
    min_requests: int,
) -> dict[str, Shift]:
    """Each signal's shift of ``current`` from ``reference`` (both ``ArmCounters.drift``
    dicts); signals with fewer than ``min_requests`` on either side are left out."""
    out: dict[str, Shift] = {}
    for signal, prefix in _PREFIX.items():
        ref, now = _categories(reference, prefix), _categories(current, prefix)
        keys = sorted(set(ref) | set(now))
        r = np.array([ref.get(k, 0.0) for k in keys])
        c = np.array([now.get(k, 0.0) for k in keys])
        if not keys or min(r.sum(), c.sum()) < min_requests:
            continue
        lower, upper, estimate, _ = max_shift_interval(c, r, alpha=alpha, scale=scale)
        out[signal] = Shift(
            signal, float(np.max(np.abs(estimate))), float(lower), float(upper), int(c.sum())
        )
    n_ref = sum(_categories(reference, "t/").values())
    n_now = sum(_categories(current, "t/").values())
    if min(n_ref, n_now) >= min_requests:
        est, var = unpaired_variance(current.get("x", 0.0), n_now, reference.get("x", 0.0), n_ref)
        radius = float(mixture_radius(var, scale, alpha))
        out["truncation"] = Shift(
            "truncation", float(est), float(est) - radius, float(est) + radius, int(n_now)
        )
    return out
