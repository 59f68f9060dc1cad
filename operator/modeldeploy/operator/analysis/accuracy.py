"""Live accuracy: is the canary non-inferior to stable within ``accuracy_margin``?

The harm is ``stable accuracy - canary accuracy``; the limit is the margin. Where both arms
scored the same labelled inputs (paired counts), the paired always-valid test is used: only
discordant pairs move it, so it needs far fewer labels when the two models mostly agree.
Otherwise the unpaired test on two independent proportions. Both are the normal-mixture
sequential test of ``sequential.py``, so checking at every interval keeps the
false-rollback rate at or below ``1 - confidence``.
"""

from __future__ import annotations

from modeldeploy.operator.analysis.config import AnalysisConfig
from modeldeploy.operator.analysis.observations import Observations
from modeldeploy.operator.analysis.sequential import paired_difference, unpaired_difference
from modeldeploy.operator.analysis.verdict import CheckResult, CheckStatus, distinct, judge

NAME = "accuracy"


def _use_paired(config: AnalysisConfig, observations: Observations) -> bool:
    """Paired when asked, or in auto mode when there are enough pairs to judge on."""
    if config.paired == "unpaired":
        return False
    if config.paired == "paired":
        return True
    paired = observations.paired
    return paired is not None and paired.total >= config.min_labels


def _percent(confidence: float) -> str:
    return f"{confidence * 100:g}%"


def check_accuracy(config: AnalysisConfig, observations: Observations) -> CheckResult:
    """Judge live accuracy; inconclusive below ``min_labels`` (per arm, or pairs)."""
    alpha, scale, margin = config.alpha, config.accuracy_mixture_scale, config.accuracy_margin
    level = _percent(config.confidence)
    if _use_paired(config, observations):
        paired = observations.paired
        pairs = paired.total if paired is not None else 0
        numbers: dict[str, object] = {"test": "paired", "pairs": pairs, "margin": margin}
        if paired is None or pairs < config.min_labels:
            return CheckResult(
                NAME,
                CheckStatus.INCONCLUSIVE,
                f"{pairs} paired labels, need {config.min_labels} before judging accuracy",
                numbers,
            )
        harm, radius = paired_difference(
            paired.stable_only, paired.canary_only, pairs, alpha=alpha, scale=scale
        )
        stable_acc = (paired.both_correct + paired.stable_only) / pairs
        canary_acc = (paired.both_correct + paired.canary_only) / pairs
        amount = f"{pairs} paired labels ({paired.discordant} discordant)"
        numbers.update(
            stable_only=paired.stable_only,
            canary_only=paired.canary_only,
            discordance=paired.discordant / pairs,
        )
    else:
        stable, canary = observations.stable, observations.canary
        n_s, n_c = stable.labelled_total, canary.labelled_total
        numbers = {"test": "unpaired", "stable_labels": n_s, "canary_labels": n_c, "margin": margin}
        if min(n_s, n_c) < config.min_labels:
            return CheckResult(
                NAME,
                CheckStatus.INCONCLUSIVE,
                f"{n_c} canary and {n_s} stable labels, need {config.min_labels} per arm "
                "before judging accuracy",
                numbers,
            )
        harm, radius = unpaired_difference(
            stable.labelled_correct, n_s, canary.labelled_correct, n_c, alpha=alpha, scale=scale
        )
        stable_acc = stable.labelled_correct / n_s
        canary_acc = canary.labelled_correct / n_c
        amount = f"{n_c} labels per arm" if n_c == n_s else f"{n_c} canary / {n_s} stable labels"

    harm_f, radius_f = float(harm), float(radius)
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
    else:
        reason = (
            f"{head}, {level} bounds [{diff_lower:+.3f}, {diff_upper:+.3f}] straddle "
            f"margin {-margin:+.3f}, {amount}"
        )
    return CheckResult(NAME, status, reason, numbers)
