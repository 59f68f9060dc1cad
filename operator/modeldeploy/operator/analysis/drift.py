"""Label-free checks: does the canary behave like stable on the same traffic?

Five signals, each switched on in ``spec.rollout.analysis.drift`` (``api/drift.py``) and
judged by the one threshold rule (``verdict.judge``) on an always-valid bound
(``drift_stats``), so each can hold a step (undecided) or roll it back (fail) on its own:

* ``drift_predictions``: the largest shift of any class's share of predictions;
* ``drift_confidence``: the largest shift of any confidence bucket's share;
* ``drift_input_tokens``: the largest shift of any input-length bucket's share;
* ``drift_truncation``: how much the share of truncated inputs rose;
* ``drift_agreement``: the share of paired inputs where the two arms predict differently.

Random traffic splitting gives both arms the same inputs in distribution, so a shift in
what the canary predicts, or how sure it is, is the model's doing; a shift in input length
or truncation is its tokenizer's.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence

import numpy as np

from modeldeploy.operator.analysis.config import AnalysisConfig
from modeldeploy.operator.analysis.drift_stats import max_shift_interval, proportion_interval
from modeldeploy.operator.analysis.observations import (
    Agreement,
    DriftCounts,
    LatencyHistogram,
    Observations,
)
from modeldeploy.operator.analysis.sequential import mixture_radius, unpaired_variance
from modeldeploy.operator.analysis.verdict import CheckResult, CheckStatus, judge

PREFIX = "drift_"
SIGNALS = ("predictions", "confidence", "input_tokens", "truncation", "agreement")
Flips = tuple[list[int], list[int], int, list[int], list[int]]
"""Per class: pairs only the canary, only stable said it; all pairs; pairs where the canary,
where stable said it (the table's margins: ``drift_stats`` takes the pairs out of each
arm's counts and combines the two disjoint parts)."""


def _points(value: float) -> str:
    return f"{value * 100:.1f}"


def _level(config: AnalysisConfig) -> str:
    return f"{config.confidence * 100:g}%"


def _arms(observations: Observations) -> tuple[DriftCounts | None, DriftCounts | None]:
    return observations.stable.drift, observations.canary.drift


def _too_few(name: str, config: AnalysisConfig, what: str, n_c: int, n_s: int) -> CheckResult:
    need = config.drift.min_requests
    return CheckResult(
        name,
        CheckStatus.INCONCLUSIVE,
        f"{n_c} canary and {n_s} stable {what}, need {need} per arm",
        {"canary_n": n_c, "stable_n": n_s},
    )


def _missing(name: str, what: str) -> CheckResult:
    return CheckResult(name, CheckStatus.INCONCLUSIVE, f"no {what} exported by both arms")


def _bucket_counts(histogram: LatencyHistogram) -> dict[float, int]:
    counts: dict[float, int] = {}
    previous = 0
    for bound, cumulative in zip(histogram.bounds, histogram.cumulative, strict=True):
        counts[bound] = cumulative - previous
        previous = cumulative
    return counts


def _bucket_names(bounds: Sequence[float], unit: str) -> list[str]:
    names = []
    for i, bound in enumerate(bounds):
        low = "0" if i == 0 else f"{bounds[i - 1]:g}"
        high = "+Inf" if math.isinf(bound) else f"{bound:g}"
        names.append(f"{unit} in ({low}, {high}]")
    return names


def _shift_check(
    name: str,
    config: AnalysisConfig,
    categories: Sequence[str],
    canary: Sequence[int],
    stable: Sequence[int],
    limit: float,
    describe: Callable[[str, float], str],
    what: str,
    flips: Flips | None = None,
) -> CheckResult:
    """The largest share shift over ``categories``, judged against ``limit``."""
    n_c, n_s = int(sum(canary)), int(sum(stable))
    if min(n_c, n_s) < config.drift.min_requests:
        return _too_few(name, config, what, n_c, n_s)
    lower, upper, estimate, _ = max_shift_interval(
        np.asarray(canary, dtype=float),
        np.asarray(stable, dtype=float),
        alpha=config.alpha,
        scale=config.drift.mixture_scale,
        flips=flips,
    )
    lo, hi = float(lower), float(upper)
    # the category that moved most; of two equal moves, the one that rose reads best
    moved = int(np.argmax(np.round(np.abs(estimate), 12) + 1e-13 * np.sign(estimate)))
    shift = float(estimate[moved])
    status = judge(lo, hi, limit)
    numbers: dict[str, object] = {
        "canary_n": n_c,
        "stable_n": n_s,
        "largest_shift": shift,
        "category": categories[moved],
        "shift_lower": lo,
        "shift_upper": hi,
        "max_shift": limit,
        "paired": flips is not None,
    }
    head = describe(categories[moved], shift)
    amount = f"{n_c} canary / {n_s} stable {what}"
    if flips is not None:
        amount += f", {flips[2]} paired"
    allowed = _points(limit)
    level = _level(config)
    if status is CheckStatus.FAIL:
        reason = f"{head} ({level} bound {_points(lo)} points, allowed {allowed}), {amount}"
    elif status is CheckStatus.PASS:
        reason = (
            f"{head}; every share within {_points(hi)} points ({level} bound), below the"
            f" allowed {allowed}, {amount}"
        )
    else:
        reason = (
            f"{head}; {level} bounds [{_points(lo)}, {_points(hi)}] points straddle the"
            f" allowed {allowed}, {amount}"
        )
    return CheckResult(name, status, reason, numbers)


def _more_often(subject: str) -> Callable[[str, float], str]:
    def describe(category: str, shift: float) -> str:
        way = "more" if shift >= 0 else "less"
        return f"canary {subject} `{category}` {_points(abs(shift))} points {way} often than stable"

    return describe


def _flips(agreement: Agreement | None, classes: Sequence[str]) -> Flips | None:
    """Per class: pairs where only the canary, only stable predicted it; all pairs; and the
    pairs where the canary, where stable predicted it."""
    if agreement is None or not agreement.table:
        return None
    only_c = [0] * len(classes)
    only_s = [0] * len(classes)
    said_c = [0] * len(classes)
    said_s = [0] * len(classes)
    pairs = 0
    for (s, c), count in agreement.table.items():
        pairs += count
        if c in classes:
            said_c[classes.index(c)] += count
        if s in classes:
            said_s[classes.index(s)] += count
        if s != c:
            if c in classes:
                only_c[classes.index(c)] += count
            if s in classes:
                only_s[classes.index(s)] += count
    return only_c, only_s, pairs, said_c, said_s


def check_predictions(config: AnalysisConfig, observations: Observations) -> CheckResult:
    name = PREFIX + "predictions"
    stable, canary = _arms(observations)
    if stable is None or canary is None or not (stable.predictions or canary.predictions):
        return _missing(name, "prediction counts")
    classes = sorted(set(stable.predictions) | set(canary.predictions))
    table_classes: set[str] = set()
    if observations.agreement is not None:
        for s, c in observations.agreement.table:
            table_classes.update((s, c))
    classes = sorted(set(classes) | table_classes)
    return _shift_check(
        name,
        config,
        classes,
        [canary.predictions.get(k, 0) for k in classes],
        [stable.predictions.get(k, 0) for k in classes],
        config.drift.predictions.max_shift,
        _more_often("predicts"),
        "predictions",
        _flips(observations.agreement, classes),
    )


def _histogram_check(
    name: str,
    config: AnalysisConfig,
    stable: LatencyHistogram | None,
    canary: LatencyHistogram | None,
    limit: float,
    unit: str,
    what: str,
) -> CheckResult:
    if stable is None or canary is None:
        return _missing(name, what)
    if stable.bounds != canary.bounds:
        return CheckResult(
            name,
            CheckStatus.INCONCLUSIVE,
            f"the arms export {what} with different buckets: cannot compare",
        )
    bounds = list(stable.bounds)
    c, s = _bucket_counts(canary), _bucket_counts(stable)

    def describe(category: str, shift: float) -> str:
        way = "more" if shift >= 0 else "fewer"
        return f"canary has {_points(abs(shift))} points {way} {category} than stable"

    return _shift_check(
        name,
        config,
        _bucket_names(bounds, unit),
        [c[b] for b in bounds],
        [s[b] for b in bounds],
        limit,
        describe,
        "requests",
    )


def check_confidence(config: AnalysisConfig, observations: Observations) -> CheckResult:
    stable, canary = _arms(observations)
    return _histogram_check(
        PREFIX + "confidence",
        config,
        stable.confidence if stable else None,
        canary.confidence if canary else None,
        config.drift.confidence.max_shift,
        "predictions with confidence",
        "confidence histograms",
    )


def check_input_tokens(config: AnalysisConfig, observations: Observations) -> CheckResult:
    stable, canary = _arms(observations)
    return _histogram_check(
        PREFIX + "input_tokens",
        config,
        stable.tokens if stable else None,
        canary.tokens if canary else None,
        config.drift.input_tokens.max_shift,
        "inputs with tokens",
        "input-length histograms",
    )


def check_truncation(config: AnalysisConfig, observations: Observations) -> CheckResult:
    name = PREFIX + "truncation"
    stable, canary = _arms(observations)
    if stable is None or canary is None:
        return _missing(name, "truncation counts")
    n_c, n_s = canary.inputs, stable.inputs
    if min(n_c, n_s) < config.drift.min_requests:
        return _too_few(name, config, "inputs", n_c, n_s)
    estimate, variance = unpaired_variance(canary.truncated, n_c, stable.truncated, n_s)
    radius = mixture_radius(variance, config.drift.mixture_scale, config.alpha)
    lo, hi = float(estimate - radius), float(estimate + radius)
    limit = config.drift.truncation.max_increase
    status = judge(lo, hi, limit)
    rate_c, rate_s = canary.truncated / n_c, stable.truncated / n_s
    numbers = {
        "canary_rate": rate_c,
        "stable_rate": rate_s,
        "increase_lower": lo,
        "increase_upper": hi,
        "max_increase": limit,
    }
    head = f"canary truncates {rate_c:.1%} of inputs, stable {rate_s:.1%}"
    level, allowed = _level(config), _points(limit)
    amount = f"{n_c} canary / {n_s} stable inputs"
    if status is CheckStatus.FAIL:
        reason = f"{head} ({level} bound +{_points(lo)} points, allowed +{allowed}), {amount}"
    elif status is CheckStatus.PASS:
        reason = f"{head}; {level} bound {_points(hi)} points below the allowed {allowed}, {amount}"
    else:
        reason = (
            f"{head}; {level} bounds [{_points(lo)}, {_points(hi)}] points straddle the"
            f" allowed {allowed}, {amount}"
        )
    return CheckResult(name, status, reason, numbers)


def check_agreement(config: AnalysisConfig, observations: Observations) -> CheckResult:
    name = PREFIX + "agreement"
    agreement = observations.agreement
    if agreement is None:
        return _missing(name, "paired answers (agreement)")
    n = agreement.total
    if n < config.drift.min_requests:
        return CheckResult(
            name,
            CheckStatus.INCONCLUSIVE,
            f"{n} inputs scored by both arms, need {config.drift.min_requests}",
            {"pairs": n},
        )
    estimate, lower, upper = proportion_interval(
        agreement.disagree, n, alpha=config.alpha, scale=config.drift.mixture_scale
    )
    lo, hi, share = float(lower), float(upper), float(estimate)
    limit = config.drift.agreement.max_disagreement
    status = judge(lo, hi, limit)
    numbers = {"pairs": n, "disagree": agreement.disagree, "lower": lo, "upper": hi}
    head = f"canary and stable disagree on {share:.1%} of {n} paired inputs"
    level, allowed = _level(config), f"{limit:.1%}"
    if status is CheckStatus.FAIL:
        reason = f"{head} ({level} bound {lo:.1%}, allowed {allowed})"
    elif status is CheckStatus.PASS:
        reason = f"{head}; {level} bound {hi:.1%} below the allowed {allowed}"
    else:
        reason = f"{head}; {level} bounds [{lo:.1%}, {hi:.1%}] straddle the allowed {allowed}"
    return CheckResult(name, status, reason, numbers)


DriftCheck = Callable[[AnalysisConfig, Observations], CheckResult]
CHECKS: Mapping[str, DriftCheck] = {
    "predictions": check_predictions,
    "confidence": check_confidence,
    "input_tokens": check_input_tokens,
    "truncation": check_truncation,
    "agreement": check_agreement,
}


def check_names(config: AnalysisConfig) -> tuple[str, ...]:
    """The check names of the enabled signals (``drift_<signal>``)."""
    return tuple(PREFIX + signal for signal in config.drift.enabled)


def run_drift_checks(config: AnalysisConfig, observations: Observations) -> tuple[CheckResult, ...]:
    """Each enabled signal's result (none when drift is off)."""
    return tuple(CHECKS[signal](config, observations) for signal in config.drift.enabled)
