"""The prediction-mix interval when a sample of the traffic is paired (KServe's joiner):
the pairs and the rest of each arm's counts are combined into one interval at the full
level. Valid on identical arms while peeking, and more powerful than intersecting two
intervals at half the level each."""

from __future__ import annotations

import numpy as np

from modeldeploy.operator.analysis.config import AnalysisConfig
from modeldeploy.operator.analysis.drift import check_predictions
from modeldeploy.operator.analysis.drift_stats import max_shift_interval
from modeldeploy.operator.analysis.observations import (
    Agreement,
    ArmObservations,
    DriftCounts,
    Observations,
)
from modeldeploy.operator.analysis.verdict import CheckStatus, crossed
from modeldeploy.tools.bench.drift import _sampled

CONFIG = AnalysisConfig.model_validate({"drift": {"predictions": {"enabled": True}}})


def flag_share(share: float, up: float, down: float, limit: float, per_arm: int, *,
               combined: bool, seed: int) -> float:  # fmt: skip
    """Share of 2,000 simulated KServe rollouts (``share`` of each arm's requests re-scored
    on the other) whose check failed at any look, every 50 requests per arm."""
    rng = np.random.default_rng(seed)
    draw = _sampled(share, up, down)
    total = None
    flagged = np.zeros(2000, dtype=bool)
    for _ in range(per_arm // 50):
        step = draw(rng, 50)
        total = list(step) if total is None else [t + s for t, s in zip(total, step, strict=True)]
        canary, stable, only_c, only_s, pairs, said_c, said_s = total
        flips: tuple[np.ndarray, ...] = (only_c, only_s, pairs[:, None])
        if combined:
            flips = (*flips, said_c, said_s)
        lower, upper, _, _ = max_shift_interval(canary, stable, alpha=0.05, scale=0.03, flips=flips)
        flagged |= crossed(lower, upper, limit)[0]
    return float(flagged.mean())


def test_identical_arms_with_sampled_pairs_are_almost_never_flagged() -> None:
    """A limit near zero: only the level stands between an identical canary and a flag."""
    assert flag_share(0.2, 0.0, 0.0, 1e-6, 3000, combined=True, seed=1) <= 0.05
    assert flag_share(0.2, 0.0, 0.0, 0.005, 5000, combined=True, seed=2) <= 0.01


def test_equal_quality_models_that_flip_both_ways_are_not_flagged() -> None:
    assert flag_share(0.2, 0.05, 0.05, 0.02, 5000, combined=True, seed=3) <= 0.01


def test_combining_beats_intersecting_at_half_the_level() -> None:
    combined = flag_share(0.2, 0.10, 0.0, 0.02, 2000, combined=True, seed=4)
    intersected = flag_share(0.2, 0.10, 0.0, 0.02, 2000, combined=False, seed=4)
    assert combined > intersected + 0.05, (combined, intersected)


def arm(predictions: dict[str, int]) -> ArmObservations:
    return ArmObservations(drift=DriftCounts(predictions=predictions))


def test_the_check_takes_the_pairs_out_of_each_arms_counts() -> None:
    # 2,000 own requests per arm; 800 pairs (20% of each arm's re-scored on the other),
    # 40 of stable's negatives answered positive by the canary.
    table = {("negative", "negative"): 360, ("negative", "positive"): 40,
             ("positive", "positive"): 400}  # fmt: skip
    agreement = Agreement(agree=760, disagree=40, table=table)
    stable = arm({"negative": 1000 + 400, "positive": 1000 + 400})
    canary = arm({"negative": 950 + 360, "positive": 1050 + 440})
    result = check_predictions(CONFIG, Observations(stable, canary, agreement=agreement))
    assert result.status is CheckStatus.FAIL, result.reason
    assert "800 paired" in result.reason
    assert result.numbers["largest_shift"] > 0.04
    # Margins read a moment later than the arms' counts (above them) leave no unpaired
    # rest, never a negative one: the pairs alone decide.
    early = arm({"negative": 300, "positive": 300})
    late = check_predictions(CONFIG, Observations(early, early, agreement=agreement))
    assert abs(late.numbers["largest_shift"] - 40 / 800) < 1e-12
    assert late.status is CheckStatus.FAIL, late.reason
