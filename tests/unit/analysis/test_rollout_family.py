"""One experiment per rollout: seeded A/A simulations over whole rollouts (pure numpy).

The operator keeps accuracy and error evidence for a canary version across its traffic
steps (observer + ``metrics/accumulate.py``), and the accuracy check uses pairs and the
unpaired rest together (``accuracy.combined_interval``). These simulations run that code on
arrays of rollouts, looking at every analysis interval, with the margin at 0 (the hardest
case: the truth sits on the limit).
"""

from __future__ import annotations

import itertools
import math

import numpy as np

from modeldeploy.operator.analysis import AnalysisConfig
from modeldeploy.operator.analysis.accuracy import combined_interval
from modeldeploy.operator.analysis.verdict import crossed

CONFIG = AnalysisConfig(accuracy_margin=0.0)
ROLLOUTS = 2000
ACCURACY = 0.85
STEPS = (0.10, 0.25, 0.50, 0.75)  # canary share of the labelled traffic per step
LOOKS_PER_STEP, LABELS_PER_LOOK = 20, 800  # 16,000 labelled inputs per step


def noise_ceiling(rate: float, runs: int) -> float:
    """``rate`` plus three binomial standard errors: what an honest rate may read as."""
    return rate + 3 * math.sqrt(rate * (1 - rate) / runs)


def failed(counts: dict[str, np.ndarray], use_pairs: np.ndarray, rest_all: bool) -> np.ndarray:
    """The accuracy check's failure, vectorised, with ``check_accuracy``'s auto rule."""
    pairs = counts["pairs"]
    if rest_all:  # no pairs used: every label is unpaired evidence
        rest = (counts["x_s"], counts["n_s"], counts["x_c"], counts["n_c"])
    else:
        rest = (
            counts["x_s"] - counts["bc"] - counts["so"],
            counts["n_s"] - pairs,
            counts["x_c"] - counts["bc"] - counts["co"],
            counts["n_c"] - pairs,
        )
    use_rest = np.minimum(rest[1], rest[3]) >= CONFIG.min_labels
    harm, radius = combined_interval(
        (counts["so"], counts["co"], pairs),
        rest,
        use_pairs=use_pairs,
        use_rest=use_rest,
        alpha=CONFIG.alpha,
        scale=CONFIG.accuracy_mixture_scale,
    )
    fail, _ = crossed(harm - radius, harm + radius, CONFIG.accuracy_margin)
    return fail & (use_pairs | use_rest)


def a_a_rollouts(*, carry: bool, seed: int) -> float:
    """False-rollback share over 4 steps; ``carry=False`` restarts the test every step."""
    rng = np.random.default_rng(seed)
    zero = np.zeros(ROLLOUTS)
    counts = {k: zero.copy() for k in ("x_s", "n_s", "x_c", "n_c")}
    rolled_back = np.zeros(ROLLOUTS, dtype=bool)
    for share in STEPS:
        if not carry:
            counts = {k: zero.copy() for k in counts}
        n_c = round(LABELS_PER_LOOK * share)
        n_s = LABELS_PER_LOOK - n_c
        for _ in range(LOOKS_PER_STEP):
            counts["x_s"] += rng.binomial(n_s, ACCURACY, ROLLOUTS)
            counts["n_s"] += n_s
            counts["x_c"] += rng.binomial(n_c, ACCURACY, ROLLOUTS)
            counts["n_c"] += n_c
            table = {**counts, "pairs": zero, "bc": zero, "so": zero, "co": zero}
            rolled_back |= failed(table, np.zeros(ROLLOUTS, dtype=bool), rest_all=True)
    return float(rolled_back.mean())


def test_a_a_false_rollbacks_over_four_steps_stay_within_alpha() -> None:
    carried = a_a_rollouts(carry=True, seed=11)
    assert carried <= noise_ceiling(CONFIG.alpha, ROLLOUTS)


def test_restarting_the_test_every_step_is_what_inflated_false_rollbacks() -> None:
    """The old per-step windows: four level-alpha experiments per rollout, so up to four
    chances of a false rollback; one experiment carried across the steps has one."""
    carried = a_a_rollouts(carry=True, seed=12)
    restarted = a_a_rollouts(carry=False, seed=12)
    assert restarted > 2 * carried


# --- paired and unpaired evidence together -------------------------------------------

PAIR_PROBABILITIES = (
    0.825,
    0.025,
    0.025,
    0.125,
)  # both right, stable only, canary only, both wrong


def mixed_labels(rng, looks: int, per_look: int, paired_share: float) -> list[dict]:
    """Running totals per look for A/A arms where ``paired_share`` of inputs are paired."""
    zero = np.zeros(ROLLOUTS)
    c = {k: zero.copy() for k in ("x_s", "n_s", "x_c", "n_c", "pairs", "bc", "so", "co")}
    paired = round(per_look * paired_share)
    alone = per_look - paired
    history = []
    for _ in range(looks):
        both_right, s_only, c_only, _ = rng.multinomial(paired, PAIR_PROBABILITIES, ROLLOUTS).T
        c["bc"] += both_right
        c["so"] += s_only
        c["co"] += c_only
        c["pairs"] += paired
        c["x_s"] += both_right + s_only + rng.binomial(alone, ACCURACY, ROLLOUTS)
        c["x_c"] += both_right + c_only + rng.binomial(alone, ACCURACY, ROLLOUTS)
        c["n_s"] += per_look
        c["n_c"] += per_look
        history.append({k: v.copy() for k, v in c.items()})
    return history


def test_paired_and_unpaired_together_keep_a_a_within_alpha() -> None:
    rng = np.random.default_rng(21)
    rolled_back = np.zeros(ROLLOUTS, dtype=bool)
    for counts in mixed_labels(rng, looks=40, per_look=100, paired_share=0.1):
        use_pairs = counts["pairs"] >= CONFIG.min_labels
        rolled_back |= np.where(
            use_pairs, failed(counts, use_pairs, False), failed(counts, use_pairs, True)
        )
    assert rolled_back.mean() <= noise_ceiling(CONFIG.alpha, ROLLOUTS)


def test_more_unpaired_labels_never_widen_the_bound() -> None:
    """Same pairs, more unpaired labels: narrower on every seed, and so on average."""
    rng = np.random.default_rng(31)
    pairs = 400
    so, co = rng.multinomial(pairs, PAIR_PROBABILITIES, ROLLOUTS).T[1:3]
    radii = []
    for rest in (0, 500, 2000, 8000):
        x_s = rng.binomial(rest, ACCURACY, ROLLOUTS)
        x_c = rng.binomial(rest, ACCURACY, ROLLOUTS)
        _, radius = combined_interval(
            (so, co, pairs),
            (x_s, rest, x_c, rest),
            use_pairs=True,
            use_rest=rest > 0,
            alpha=CONFIG.alpha,
            scale=CONFIG.accuracy_mixture_scale,
        )
        radii.append(radius)
    for fewer, more in itertools.pairwise(radii):
        assert np.all(more < fewer)
    means = [float(r.mean()) for r in radii]
    assert means == sorted(means, reverse=True)
