"""Live accuracy: is the canary non-inferior to stable within ``accuracy_margin``?

The harm is ``stable accuracy - canary accuracy``; the limit is the margin. Two kinds of
evidence exist: pairs (both arms scored the same labelled input: only discordant pairs
move the paired test, so it needs far fewer labels when the models mostly agree) and the
rest of each arm's labels (independent proportions). ``paired="auto"`` uses both at once:
the paired estimate on the pairs and the unpaired estimate on the disjoint rest, combined
by inverse-variance weighting (``sequential.combined_difference``), so every label counts
and more labels never widen the bound. ``paired`` uses pairs only, ``unpaired`` treats all
labels as unpaired. All are the normal-mixture sequential test of ``sequential.py``, so
checking at every interval keeps the false-rollback rate at or below ``1 - confidence``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from modeldeploy.operator.analysis.config import AnalysisConfig
from modeldeploy.operator.analysis.observations import Observations, PairedCounts
from modeldeploy.operator.analysis.sequential import (
    combined_difference,
    paired_variance,
    unpaired_variance,
)
from modeldeploy.operator.analysis.verdict import CheckResult, CheckStatus, distinct, judge

NAME = "accuracy"


@dataclass(frozen=True)
class _Rest:
    """Each arm's labels that are not part of a pair: (correct, total) per arm."""

    stable_correct: int
    stable_total: int
    canary_correct: int
    canary_total: int


def _rest(observations: Observations) -> _Rest:
    """Per-arm labels minus the paired ones (arms count paired labels too, docs/metrics.md).

    Counters read at slightly different moments can disagree by a few labels; the rest is
    clamped to a consistent, non-negative table.
    """
    s, c = observations.stable, observations.canary
    p = observations.paired or PairedCounts()
    n_s = max(s.labelled_total - p.total, 0)
    n_c = max(c.labelled_total - p.total, 0)
    x_s = min(max(s.labelled_correct - p.both_correct - p.stable_only, 0), n_s)
    x_c = min(max(c.labelled_correct - p.both_correct - p.canary_only, 0), n_c)
    return _Rest(x_s, n_s, x_c, n_c)


def combined_interval(
    paired: tuple[npt.ArrayLike, npt.ArrayLike, npt.ArrayLike],
    rest: tuple[npt.ArrayLike, npt.ArrayLike, npt.ArrayLike, npt.ArrayLike],
    *,
    use_pairs: npt.ArrayLike,
    use_rest: npt.ArrayLike,
    alpha: float,
    scale: float,
) -> tuple[np.ndarray, np.ndarray]:
    """Harm estimate and radius from the pairs and/or the rest (vectorised).

    ``paired`` is (stable_only, canary_only, pairs); ``rest`` is (stable correct, stable
    total, canary correct, canary total) of the unpaired labels. A part not used gets
    weight 0. The simulations call this on arrays of rollouts; ``check_accuracy`` on one.
    """
    p_est, p_var = paired_variance(*paired)
    r_est, r_var = unpaired_variance(*rest)
    p_var = np.where(np.asarray(use_pairs, dtype=bool), p_var, np.inf)
    r_var = np.where(np.asarray(use_rest, dtype=bool), r_var, np.inf)
    return combined_difference([(p_est, p_var), (r_est, r_var)], alpha=alpha, scale=scale)


def _percent(confidence: float) -> str:
    return f"{confidence * 100:g}%"


def _labels(n_c: int, n_s: int, what: str = "labels") -> str:
    return f"{n_c} {what} per arm" if n_c == n_s else f"{n_c} canary / {n_s} stable {what}"


def check_accuracy(config: AnalysisConfig, observations: Observations) -> CheckResult:
    """Judge live accuracy; inconclusive below ``min_labels`` (per arm, or pairs)."""
    alpha, scale, margin = config.alpha, config.accuracy_mixture_scale, config.accuracy_margin
    level = _percent(config.confidence)
    stable, canary = observations.stable, observations.canary
    paired = observations.paired or PairedCounts()
    pairs, need = paired.total, config.min_labels
    n_s, n_c = stable.labelled_total, canary.labelled_total
    use_pairs = config.paired != "unpaired" and pairs >= need
    if config.paired == "paired":
        rest = _Rest(0, 0, 0, 0)
    elif use_pairs:
        rest = _rest(observations)
    else:  # no pairs used: every label is unpaired evidence
        rest = _Rest(stable.labelled_correct, n_s, canary.labelled_correct, n_c)
    use_rest = min(rest.stable_total, rest.canary_total) >= need
    test = "combined" if use_pairs and use_rest else ("paired" if use_pairs else "unpaired")
    numbers: dict[str, object] = {"test": test, "pairs": pairs, "margin": margin}
    numbers.update(stable_labels=n_s, canary_labels=n_c)
    if not (use_pairs or use_rest):
        if config.paired == "paired":
            why = f"{pairs} paired labels, need {need} before judging accuracy"
        elif config.paired == "auto" and pairs:
            why = (
                f"{pairs} paired and {_labels(rest.canary_total, rest.stable_total)} "
                f"unpaired, need {need} pairs or {need} per arm before judging accuracy"
            )
        else:
            why = (
                f"{n_c} canary and {n_s} stable labels, need {need} per arm before judging accuracy"
            )
        return CheckResult(NAME, CheckStatus.INCONCLUSIVE, why, numbers)

    amounts = []
    if use_pairs:
        amounts.append(f"{pairs} paired labels ({paired.discordant} discordant)")
        numbers.update(
            stable_only=paired.stable_only,
            canary_only=paired.canary_only,
            discordance=paired.discordant / pairs,
        )
    if use_rest:
        what = "unpaired labels" if use_pairs else "labels"
        amounts.append(_labels(rest.canary_total, rest.stable_total, what))
        numbers.update(unpaired_stable_labels=rest.stable_total)
        numbers.update(unpaired_canary_labels=rest.canary_total)
    harm, radius = combined_interval(
        (paired.stable_only, paired.canary_only, pairs),
        (rest.stable_correct, rest.stable_total, rest.canary_correct, rest.canary_total),
        use_pairs=use_pairs,
        use_rest=use_rest,
        alpha=alpha,
        scale=scale,
    )
    if test == "paired":
        stable_acc = (paired.both_correct + paired.stable_only) / pairs
        canary_acc = (paired.both_correct + paired.canary_only) / pairs
    else:
        stable_acc = stable.labelled_correct / n_s
        canary_acc = canary.labelled_correct / n_c
    amount = " + ".join(amounts)

    harm_f, radius_f = float(np.asarray(harm)), float(np.asarray(radius))
    lower, upper = harm_f - radius_f, harm_f + radius_f
    status = judge(lower, upper, margin)
    # Reasons speak in terms of the difference canary - stable, as people read it.
    diff, diff_upper, diff_lower = -harm_f, -lower, -upper
    numbers.update(
        stable_accuracy=stable_acc,
        canary_accuracy=canary_acc,
        difference=diff,
        difference_upper=diff_upper,
        difference_lower=diff_lower,
        confidence=config.confidence,
    )
    head = f"accuracy {canary_acc:.3f} vs {stable_acc:.3f}"
    if status is CheckStatus.FAIL:
        bound, limit = distinct(diff_upper, -margin)
        reason = f"{head}, {level} bound {bound} below margin {limit}, {amount}"
    elif status is CheckStatus.PASS:
        bound, limit = distinct(diff_lower, -margin)
        reason = f"{head}, {level} bound {bound} above margin {limit}: non-inferior, {amount}"
    elif status is CheckStatus.INCONCLUSIVE:
        reason = f"{head}: the bound could not be computed, {amount}"
    else:
        reason = (
            f"{head}, {level} bounds [{diff_lower:+.3f}, {diff_upper:+.3f}] straddle "
            f"margin {-margin:+.3f}, {amount}"
        )
    return CheckResult(NAME, status, reason, numbers)
