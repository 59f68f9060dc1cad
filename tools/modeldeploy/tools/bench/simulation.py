"""Proof by simulation: the analysis' false rollbacks, detection speed and baselines.

Every rollout is checked every ``STEP`` labels (or requests) per arm, up to ``HORIZON``,
with the product's own code: the bounds come from ``analysis.sequential`` and
``analysis.latency`` and the rule from ``analysis.verdict.crossed``, applied to arrays of
thousands of rollouts at once. Nothing here re-implements a test.

Scenarios: A/A, 5- and 3-point accuracy drops (unpaired and paired), with a Flagger-style
fixed threshold tuned to 1% A/A false rollbacks in the same run and Wald's SPRT as the
reference; latency at sigma 0.5 and 1.0 (identical canary, P99 +25% in the tail or
everywhere, and the hardest null for the latency test's level); and a replay of the real
checkpoints' test predictions. ``run()`` returns one JSON-serialisable dict.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from scipy.special import ndtr

from modeldeploy.operator.analysis.config import AnalysisConfig
from modeldeploy.operator.analysis.latency import tail_test
from modeldeploy.operator.analysis.sequential import (
    paired_difference,
    step_alpha,
    unpaired_difference,
)
from modeldeploy.operator.analysis.verdict import crossed
from modeldeploy.serving.contract.latency import latency_bucket_edges

Progress = Callable[[str], None]
STEP = 50
HORIZON = 4000
LATENCY_HORIZON = 10_000  # the goal: caught by 10,000 requests per arm
LATENCY_EVERY = 100
EQUAL_HORIZON = 100_000  # how long an identical canary takes to be proven equal
EQUAL_EVERY = 1000
BOUNDARY_HORIZON = 20_000
LATENCY_SIGMAS = (0.5, 1.0)
Z99, Z98 = 2.3263478740408408, 2.0537489106318225
STABLE_ACCURACY = 0.85
TARGET_FALSE_ROLLBACK = 0.01
LATENCY_MEDIAN_S = 0.020  # the MiniLM classifier's median on these machines
P99_REGRESSION = 1.25
REAL_RECIPES = ("good", "bad", "reseed")


def contract_buckets() -> np.ndarray:
    """The contract's latency buckets (docs/metrics.md), then ``+Inf``."""
    return np.array([*latency_bucket_edges(), math.inf])


# ---------------------------------------------------------------- summaries


def _stop_summary(stops: np.ndarray, step: int, horizon: int) -> dict[str, Any]:
    """Share caught within the horizon and quantiles of the stopping point (per arm)."""
    caught = stops >= 0
    when = np.where(caught, (stops + 1) * step, np.inf)

    def quantile(q: float) -> float | None:
        value = float(np.quantile(when, q, method="higher"))
        return None if math.isinf(value) else value

    return {
        "rollouts": int(stops.size),
        "share_caught": float(caught.mean()),
        "median": quantile(0.5),
        "p95": quantile(0.95),
        "horizon": horizon,
    }


def _first_true(flags: np.ndarray) -> np.ndarray:
    """Index of the first True along the last axis, -1 where there is none."""
    hit = flags.any(axis=-1)
    return np.where(hit, flags.argmax(axis=-1), -1)


# ---------------------------------------------------------------- accuracy


def _grid(step: int = STEP, horizon: int = HORIZON) -> np.ndarray:
    return np.arange(step, horizon + 1, step)


def unpaired_stops(
    config: AnalysisConfig, stable_correct: np.ndarray, canary_correct: np.ndarray
) -> np.ndarray:
    """First check (index) at which the unpaired accuracy test fails; -1 if never."""
    n = _grid(horizon=stable_correct.shape[1] * STEP)[None, :]
    harm, radius = unpaired_difference(
        stable_correct,
        n,
        canary_correct,
        n,
        alpha=config.alpha,
        scale=config.accuracy_mixture_scale,
    )
    failed, _ = crossed(harm - radius, harm + radius, config.accuracy_margin)
    return _first_true(failed & (n >= config.min_labels))


def paired_stops(
    config: AnalysisConfig, stable_only: np.ndarray, canary_only: np.ndarray
) -> np.ndarray:
    """First check at which the paired accuracy test fails; -1 if never."""
    n = _grid(horizon=stable_only.shape[1] * STEP)[None, :]
    harm, radius = paired_difference(
        stable_only, canary_only, n, alpha=config.alpha, scale=config.accuracy_mixture_scale
    )
    failed, _ = crossed(harm - radius, harm + radius, config.accuracy_margin)
    return _first_true(failed & (n >= config.min_labels))


def _unpaired_draws(rng: np.random.Generator, rollouts: int, p_stable: float, p_canary: float):
    checks = HORIZON // STEP
    stable = rng.binomial(STEP, p_stable, size=(rollouts, checks)).cumsum(axis=1)
    canary = rng.binomial(STEP, p_canary, size=(rollouts, checks)).cumsum(axis=1)
    return stable, canary


def paired_cells(p_stable: float, p_canary: float, discordance: float) -> np.ndarray:
    """McNemar cell probabilities (both, stable only, canary only, neither) for a discordance.

    The discordance is clipped to what the two accuracies allow: at least the drop, at most
    ``2 - p_stable - p_canary`` (no input that both get wrong).
    """
    drop = p_stable - p_canary
    discordance = min(max(discordance, abs(drop)), 2.0 - p_stable - p_canary)
    stable_only = (discordance + drop) / 2
    canary_only = (discordance - drop) / 2
    both = p_stable - stable_only
    neither = 1.0 - both - stable_only - canary_only
    if min(both, neither) < 0:
        raise ValueError("discordance too large for these accuracies")
    return np.array([both, stable_only, canary_only, neither])


def _paired_draws(rng: np.random.Generator, rollouts: int, cells: np.ndarray):
    checks = HORIZON // STEP
    counts = rng.multinomial(STEP, cells, size=(rollouts, checks)).cumsum(axis=1)
    return counts[..., 1], counts[..., 2]


def _flagger_statistic(
    stable_correct: np.ndarray, canary_correct: np.ndarray, k: int, min_labels: int
) -> np.ndarray:
    """Observed accuracy drop, min over the last k checks (k consecutive failures)."""
    n = _grid(horizon=stable_correct.shape[1] * STEP)[None, :]
    drop = (stable_correct - canary_correct) / n
    drop = np.where(n >= min_labels, drop, -np.inf)
    windows = np.lib.stride_tricks.sliding_window_view(drop, k, axis=1)
    rolled = windows.min(axis=-1)
    pad = np.full((drop.shape[0], k - 1), -np.inf)
    return np.concatenate([pad, rolled], axis=1)


def wald_sprt_expected_n(drop: float, variance: float, alpha: float, beta: float) -> float:
    """Wald's approximation to the SPRT's expected sample size under the alternative.

    Tests ``d = 0`` against ``d = -drop`` for increments with the given variance (Gaussian
    likelihood, KL = drop^2 / (2 variance)). No sequential test with the same error rates
    has a smaller expected sample size at the alternative (Wald & Wolfowitz, 1948).
    """
    kl = drop * drop / (2.0 * variance)
    numerator = (1 - beta) * math.log((1 - beta) / alpha) + beta * math.log(beta / (1 - alpha))
    return numerator / kl


def _accuracy_scenarios(
    config: AnalysisConfig,
    rng: np.random.Generator,
    rollouts: int,
    discordance: float,
    say: Progress,
) -> dict[str, Any]:
    out: dict[str, Any] = {}
    p = STABLE_ACCURACY
    say("accuracy: A/A and drops, unpaired and paired")
    aa_s, aa_c = _unpaired_draws(rng, rollouts, p, p)
    aa_unpaired = unpaired_stops(config, aa_s, aa_c)
    aa_so, aa_co = _paired_draws(rng, rollouts, paired_cells(p, p, discordance))
    aa_paired = paired_stops(config, aa_so, aa_co)
    out["a_a"] = {
        "stable_accuracy": p,
        "canary_accuracy": p,
        "paired_discordance": discordance,
        "false_rollback_unpaired": float((aa_unpaired >= 0).mean()),
        "false_rollback_paired": float((aa_paired >= 0).mean()),
        "goal": f"<= {TARGET_FALSE_ROLLBACK}",
    }

    # Baseline: Flagger-style fixed threshold with k consecutive failures, its threshold
    # tuned on fresh A/A rollouts to the same 1% false-rollback rate.
    tune_s, tune_c = _unpaired_draws(rng, rollouts, p, p)
    thresholds = {}
    for k in (1, 3, 5):
        worst = _flagger_statistic(tune_s, tune_c, k, config.min_labels).max(axis=1)
        thresholds[k] = float(np.quantile(worst, 1 - TARGET_FALSE_ROLLBACK, method="higher"))

    for name, drop in (("drop_5_points", 0.05), ("drop_3_points", 0.03)):
        q = p - drop
        s, c = _unpaired_draws(rng, rollouts, p, q)
        cells = paired_cells(p, q, discordance)
        so, co = _paired_draws(rng, rollouts, cells)
        unpaired_var = p * (1 - p) + q * (1 - q)
        paired_var = cells[1] + cells[2] - drop * drop
        a, b = TARGET_FALSE_ROLLBACK, TARGET_FALSE_ROLLBACK
        baselines = {}
        for k, threshold in thresholds.items():
            # a fresh draw so the tuned threshold is not judged on the data it was tuned on
            stat = _flagger_statistic(s, c, k, config.min_labels)
            stops = _first_true(stat > threshold)
            baselines[f"fixed_threshold_k{k}"] = {
                "threshold_on_drop": threshold,
                "false_rollback_tuned_to": TARGET_FALSE_ROLLBACK,
                **_stop_summary(stops, STEP, HORIZON),
            }
        out[name] = {
            "stable_accuracy": p,
            "canary_accuracy": q,
            "unpaired": _stop_summary(unpaired_stops(config, s, c), STEP, HORIZON),
            "paired": {
                "discordance": float(cells[1] + cells[2]),
                **_stop_summary(paired_stops(config, so, co), STEP, HORIZON),
            },
            "wald_sprt_expected_labels": {
                "unpaired": wald_sprt_expected_n(drop, unpaired_var, a, b),
                "paired": wald_sprt_expected_n(drop, paired_var, a, b),
                "alpha": a,
                "beta": b,
                "note": "Wald's approximation, H0 d=0 vs H1 d=-drop, known variance",
            },
            "baselines_unpaired": baselines,
        }
    return out


def _discordance_sweep(
    config: AnalysisConfig, rng: np.random.Generator, rollouts: int, discordances: dict[str, float]
) -> dict[str, Any]:
    """The paired 5-point drop at several discordances: pairing helps only when errors overlap."""
    p, q = STABLE_ACCURACY, STABLE_ACCURACY - 0.05
    sweep = {}
    for name, pi in discordances.items():
        cells = paired_cells(p, q, pi)
        so, co = _paired_draws(rng, rollouts, cells)
        sweep[name] = {
            "discordance": float(cells[1] + cells[2]),
            **_stop_summary(paired_stops(config, so, co), STEP, HORIZON),
        }
    return sweep


# ---------------------------------------------------------------- latency


def lognormal_cdf(sigma: float, scale: float = 1.0) -> Callable[[np.ndarray], np.ndarray]:
    """CDF of the stable arm's latency (median ``LATENCY_MEDIAN_S``), optionally scaled."""

    def cdf(x: np.ndarray) -> np.ndarray:
        with np.errstate(divide="ignore"):
            return ndtr(np.log(x / (LATENCY_MEDIAN_S * scale)) / sigma)

    return cdf


def slow_tail_cdf(sigma: float) -> Callable[[np.ndarray], np.ndarray]:
    """The issue's tail regression: stable's requests above its P98 are 25% slower, so the
    P99 is 25% worse and everything up to the P98 is unchanged."""
    stable = lognormal_cdf(sigma)
    start = LATENCY_MEDIAN_S * math.exp(sigma * Z98)

    def cdf(x: np.ndarray) -> np.ndarray:
        return np.where(x <= start, stable(x), np.maximum(0.98, stable(x / P99_REGRESSION)))

    return cdf


def bucket_probabilities(cdf: Callable[[np.ndarray], np.ndarray], bounds: np.ndarray) -> np.ndarray:
    """Probability of each contract bucket (the last bound is ``+Inf``)."""
    return np.diff(np.append(cdf(bounds[:-1]), 1.0), prepend=0.0)


def latency_decisions(
    config: AnalysisConfig,
    rng: np.random.Generator,
    p_stable: np.ndarray,
    p_canary: np.ndarray,
    rollouts: int,
    horizon: int,
    every: int,
) -> tuple[np.ndarray, np.ndarray]:
    """Requests per arm at the first FAIL and the first PASS of the relative check (-1: none).

    Requests are drawn straight into buckets; the running totals are judged every ``every``
    requests per arm by ``analysis.latency.tail_test``, the code ``check_latency`` runs, on
    the first traffic step's alpha. The cap is not simulated (unset by default).
    """
    bounds = contract_buckets()
    alpha = step_alpha(config.alpha, 0)
    totals_s = np.zeros((rollouts, bounds.size), dtype=np.int64)
    totals_c = np.zeros_like(totals_s)
    fail_at = np.full(rollouts, -1)
    pass_at = np.full(rollouts, -1)
    for look in range(horizon // every):
        totals_s += rng.multinomial(every, p_stable, size=rollouts)
        totals_c += rng.multinomial(every, p_canary, size=rollouts)
        n = (look + 1) * every
        if n < config.min_requests:
            continue
        test = tail_test(
            bounds,
            totals_s.cumsum(axis=1),
            bounds,
            totals_c.cumsum(axis=1),
            tolerance=config.p99_tolerance,
            quantile=config.latency_quantile,
            alpha=alpha,
            weight=config.quantile_mixture_weight,
        )
        fail_at[(fail_at < 0) & test.failed] = n
        pass_at[(pass_at < 0) & test.passed] = n
    return fail_at, pass_at


def _requests_summary(at: np.ndarray, horizon: int) -> dict[str, Any]:
    """Share decided within the horizon and quantiles of when (requests per arm)."""
    when = np.where(at > 0, at, np.inf)

    def quantile(q: float) -> float | None:
        value = float(np.quantile(when, q, method="higher"))
        return None if math.isinf(value) else value

    return {
        "rollouts": int(at.size),
        "share": float((at > 0).mean()),
        "median": quantile(0.5),
        "p95": quantile(0.95),
        "horizon": horizon,
    }


def _latency_scenarios(
    config: AnalysisConfig, rng: np.random.Generator, rollouts: int, say: Progress
) -> dict[str, Any]:
    bounds = contract_buckets()
    out: dict[str, Any] = {
        "distribution": {
            "stable_median_ms": LATENCY_MEDIAN_S * 1000,
            "latency": "lognormal; P99 +25%: tail = requests above stable's P98 25% slower,"
            " heavier_tail = same median and a larger sigma, scaled = every request",
            "buckets": "the metrics contract (docs/metrics.md): ratio 1.05 from 1 ms",
        },
        "tolerance": config.p99_tolerance,
        "min_requests": config.min_requests,
        "alpha_first_step": step_alpha(config.alpha, 0),
        "checked_every": LATENCY_EVERY,
        "goal": "+25% tail P99 caught in >= 95% of rollouts by 10,000 requests per arm at"
        " sigma 0.5; identical canary failed in <= 1% and proven equal",
    }
    for sigma in LATENCY_SIGMAS:
        stable = bucket_probabilities(lognormal_cdf(sigma), bounds)
        cases = {
            "p99_25pct_worse_tail": slow_tail_cdf(sigma),
            "p99_25pct_worse_scaled": lognormal_cdf(sigma, P99_REGRESSION),
            # the rollout benchmark's tail (traffic.py): same median, a larger sigma
            "p99_25pct_worse_heavier_tail": lognormal_cdf(sigma + math.log(P99_REGRESSION) / Z99),
        }
        figures: dict[str, Any] = {
            "stable_p99_ms": LATENCY_MEDIAN_S * math.exp(sigma * Z99) * 1000,
        }
        for name, cdf in cases.items():
            say(f"latency: sigma {sigma}, {name}")
            fail_at, pass_at = latency_decisions(
                config,
                rng,
                stable,
                bucket_probabilities(cdf, bounds),
                rollouts,
                LATENCY_HORIZON,
                LATENCY_EVERY,
            )
            figures[name] = {
                "caught": _requests_summary(fail_at, LATENCY_HORIZON),
                "wrongly_passed": float((pass_at > 0).mean()),
            }
        say(f"latency: sigma {sigma}, identical canary")
        fail_at, pass_at = latency_decisions(
            config, rng, stable, stable, rollouts, EQUAL_HORIZON, EQUAL_EVERY
        )
        figures["a_a"] = {
            "false_rollback": float((fail_at > 0).mean()),
            "proven_equal": _requests_summary(pass_at, EQUAL_HORIZON),
            "checked_every": EQUAL_EVERY,
        }
        say(f"latency: sigma {sigma}, hardest null (exactly 1 + tolerance slower)")
        boundary = bucket_probabilities(lognormal_cdf(sigma, 1.0 + config.p99_tolerance), bounds)
        fail_at, pass_at = latency_decisions(
            config, rng, stable, boundary, rollouts, BOUNDARY_HORIZON, LATENCY_EVERY
        )
        figures["hardest_null"] = {
            "false_fail": float((fail_at > 0).mean()),
            "false_pass": float((pass_at > 0).mean()),
            "horizon": BOUNDARY_HORIZON,
            "limit": step_alpha(config.alpha, 0),
        }
        out[f"sigma_{sigma:g}"] = figures
    return out


# ---------------------------------------------------------------- real checkpoints


def load_real_outcomes(names: tuple[str, ...] = REAL_RECIPES) -> dict[str, np.ndarray]:
    """Per-row correctness of the real checkpoints on the held-out test reviews."""
    from modeldeploy.tools.checkpoints import build
    from modeldeploy.tools.checkpoints.factory import predictions_path
    from modeldeploy.tools.checkpoints.recipes import get_recipe

    outcomes: dict[str, np.ndarray] = {}
    for name in names:
        path = predictions_path(get_recipe(name))
        if not path.exists():
            build(name)  # writes the predictions beside the checkpoint
        data = json.loads(path.read_text())
        outcomes[name] = np.asarray(data["predicted"]) == np.asarray(data["labels"])
    return outcomes


def discordance(a: np.ndarray, b: np.ndarray) -> float:
    return float((a != b).mean())


def _replay(
    config: AnalysisConfig,
    rng: np.random.Generator,
    rollouts: int,
    stable: np.ndarray,
    canary: np.ndarray,
) -> dict[str, Any]:
    """Replay the rows in random order (with replacement), paired and unpaired."""
    rows = stable.size
    checks = HORIZON // STEP

    def per_check(x: np.ndarray) -> np.ndarray:
        return x.reshape(rollouts, checks, STEP).sum(axis=2).cumsum(axis=1)

    pick_s = rng.integers(0, rows, size=(rollouts, HORIZON))
    pick_c = rng.integers(0, rows, size=(rollouts, HORIZON))
    unpaired = unpaired_stops(config, per_check(stable[pick_s]), per_check(canary[pick_c]))
    stable_only = per_check(stable[pick_s] & ~canary[pick_s])
    canary_only = per_check(canary[pick_s] & ~stable[pick_s])
    paired = paired_stops(config, stable_only, canary_only)
    return {
        "stable_accuracy": float(stable.mean()),
        "canary_accuracy": float(canary.mean()),
        "discordance": discordance(stable, canary),
        "test_rows": int(rows),
        "unpaired": _stop_summary(unpaired, STEP, HORIZON),
        "paired": _stop_summary(paired, STEP, HORIZON),
    }


# ---------------------------------------------------------------- entry points


def run(
    seed: int = 0,
    rollouts: int = 1000,
    progress: Progress | None = None,
    config: AnalysisConfig | None = None,
    real: dict[str, np.ndarray] | None = None,
) -> dict[str, Any]:
    """Run every scenario once; returns the JSON-serialisable results (bench/results.json).

    ``real`` maps recipe name -> per-row correctness; by default it is read from the
    checkpoint cache (building ``good``, ``bad`` and ``reseed`` if needed).
    """
    say = progress or (lambda message: None)
    config = config or AnalysisConfig()
    started = time.monotonic()
    rng = np.random.default_rng(seed)
    say("loading the real checkpoints' test predictions")
    real = real if real is not None else load_real_outcomes()
    measured = discordance(real["good"], real["reseed"])
    results: dict[str, Any] = {
        "seed": seed,
        "rollouts": rollouts,
        "check_every": STEP,
        "horizon_labels_per_arm": HORIZON,
        "config": config.to_dict(),
        "paired_discordance_source": "good vs reseed checkpoints on the test split",
    }
    results["accuracy"] = _accuracy_scenarios(config, rng, rollouts, measured, say)
    independent = 2 * STABLE_ACCURACY * (1 - STABLE_ACCURACY) + 0.05 * (2 * STABLE_ACCURACY - 1)
    results["accuracy"]["drop_5_points_discordance_sweep"] = _discordance_sweep(
        config,
        rng,
        rollouts,
        {
            "good_vs_reseed": measured,
            "good_vs_bad": discordance(real["good"], real["bad"]),
            "independent_errors": independent,
        },
    )
    results["latency"] = _latency_scenarios(config, rng, rollouts, say)
    say("replaying the real checkpoints")
    results["real_checkpoints"] = {
        f"{s}_to_{c}": _replay(config, rng, rollouts, real[s], real[c])
        for s, c in (("good", "bad"), ("good", "reseed"), ("good", "good"))
    }
    results["seconds"] = round(time.monotonic() - started, 1)
    return results


def run_benchmark(progress: Progress | None = None) -> dict[str, Any]:
    """``run`` with the defaults the README quotes."""
    return run(progress=progress)


def run_suite(output_dir: Path, progress: Progress | None = None) -> dict[str, Any]:
    """The ``modeldeploy-dev bench`` suite entry: the caller writes bench/results.json."""
    del output_dir  # the simulation writes no files of its own
    return run_benchmark(progress)


def _fmt(summary: dict[str, Any]) -> str:
    def n(v: Any) -> str:
        return "not reached" if v is None else f"{v:,.0f}"

    return f"{summary['share_caught']:.1%} | {n(summary['median'])} | {n(summary['p95'])}"


def _fmt_requests(summary: dict[str, Any]) -> str:
    return _fmt({**summary, "share_caught": summary["share"]})


def markdown_table(results: dict[str, Any]) -> str:
    """The results as a Markdown table (for docs/statistics.md and the README)."""
    acc, lat, real = results["accuracy"], results["latency"], results["real_checkpoints"]
    rows = [
        "| scenario | caught (share) | median per arm | p95 per arm |",
        "|---|---|---|---|",
        f"| A/A unpaired: false rollbacks | {acc['a_a']['false_rollback_unpaired']:.1%} | | |",
        f"| A/A paired (discordance {acc['a_a']['paired_discordance']:.3f}): false rollbacks"
        f" | {acc['a_a']['false_rollback_paired']:.1%} | | |",
    ]
    for name, label in (("drop_5_points", "5-point drop"), ("drop_3_points", "3-point drop")):
        d = acc[name]
        sprt = d["wald_sprt_expected_labels"]
        rows.append(f"| {label}, unpaired | {_fmt(d['unpaired'])} |")
        paired = d["paired"]
        rows.append(
            f"| {label}, paired (discordance {paired['discordance']:.3f}) | {_fmt(paired)} |"
        )
        rows.append(
            f"| {label}, Wald SPRT expected labels (reference) | | "
            f"{sprt['unpaired']:,.0f} unpaired / {sprt['paired']:,.0f} paired | |"
        )
        for key, base in d["baselines_unpaired"].items():
            k = key.rsplit("k", 1)[1]
            rows.append(
                f"| {label}, fixed threshold {base['threshold_on_drop']:.3f}, {k} consecutive "
                f"(1% A/A) | {_fmt(base)} |"
            )
    for key, sweep in acc["drop_5_points_discordance_sweep"].items():
        head = f"5-point drop, paired, discordance {sweep['discordance']:.3f} ({key})"
        rows.append(f"| {head} | {_fmt(sweep)} |")
    for key, fig in lat.items():
        if not key.startswith("sigma_"):
            continue
        sigma = key.removeprefix("sigma_")
        a_a, null = fig["a_a"], fig["hardest_null"]
        rows.append(
            f"| latency sigma {sigma}, A/A: false rollbacks | {a_a['false_rollback']:.1%} | | |"
        )
        head = f"| latency sigma {sigma}"
        rows.append(
            f"{head}, A/A: proven equal (requests) | {_fmt_requests(a_a['proven_equal'])} |"
        )
        for name in (
            "p99_25pct_worse_tail",
            "p99_25pct_worse_heavier_tail",
            "p99_25pct_worse_scaled",
        ):
            rows.append(f"{head}, {name} (requests) | {_fmt_requests(fig[name]['caught'])} |")
        rows.append(
            f"| latency sigma {sigma}, exactly 1 + tolerance slower: false fail / false pass"
            f" (limit {null['limit']:.1%}) | {null['false_fail']:.1%} /"
            f" {null['false_pass']:.1%} | | |"
        )
    for key, r in real.items():
        head = f"real {key} ({r['stable_accuracy']:.3f} -> {r['canary_accuracy']:.3f})"
        rows.append(f"| {head}, unpaired | {_fmt(r['unpaired'])} |")
        rows.append(
            f"| {head}, paired (discordance {r['discordance']:.3f}) | {_fmt(r['paired'])} |"
        )
    return "\n".join(rows) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", type=Path, help="write the results JSON here")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--rollouts", type=int, default=1000)
    parser.add_argument("--markdown", type=Path, help="print the table of an existing results file")
    parser.add_argument(
        "--set", action="append", default=[], metavar="KEY=VALUE", help="override a config knob"
    )
    args = parser.parse_args(argv)
    if args.markdown:
        print(markdown_table(json.loads(args.markdown.read_text())), end="")
        return 0
    config = AnalysisConfig()
    for item in args.set:
        key, _, value = item.partition("=")
        config = config.replaced(**{key: value})
    results = run(
        seed=args.seed,
        rollouts=args.rollouts,
        progress=lambda m: print(f"  [simulation] {m}", file=sys.stderr, flush=True),
        config=config,
    )
    text = json.dumps(results, indent=2)
    if args.output:
        args.output.parent.mkdir(parents=True, exist_ok=True)
        args.output.write_text(text + "\n")
    else:
        print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
