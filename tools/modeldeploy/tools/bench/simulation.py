"""Proof by simulation: the analysis' false rollbacks, detection speed and baselines.

Every rollout is checked every ``STEP`` labels (or requests) per arm, up to ``HORIZON``,
with the product's own code: the bounds come from ``analysis.sequential`` and
``analysis.latency`` and the rule from ``analysis.verdict.crossed``, applied to arrays of
thousands of rollouts at once. Nothing here re-implements a test.

Scenarios: A/A, 5- and 3-point accuracy drops (unpaired and paired), a 25% P99
regression, a Flagger-style fixed threshold and a Kayenta-style Mann-Whitney tuned to
1% A/A false rollbacks in the same run, Wald's SPRT as the reference, and a replay of the
real checkpoints' test predictions. ``run()`` returns one JSON-serialisable dict.
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
from scipy.stats import mannwhitneyu

from modeldeploy.operator.analysis.config import AnalysisConfig
from modeldeploy.operator.analysis.latency import bounds_from_counts
from modeldeploy.operator.analysis.sequential import (
    binomial_count_bounds,
    paired_difference,
    unpaired_difference,
)
from modeldeploy.operator.analysis.verdict import crossed
from modeldeploy.serving.contract.latency import latency_bucket_edges

Progress = Callable[[str], None]
STEP = 50
HORIZON = 4000
LATENCY_HORIZON = 10_000
MW_STEP = 1000
STABLE_ACCURACY = 0.85
TARGET_FALSE_ROLLBACK = 0.01
# CPU latency of the MiniLM classifier measured on these machines (docs: NOTES):
# median 20 ms, P99 about 32 ms -> lognormal sigma = ln(32/20) / z_0.99.
LATENCY_MEDIAN_S = 0.020
LATENCY_SIGMA = math.log(32 / 20) / 2.3263478740408408
P99_REGRESSION = 1.25
REAL_RECIPES = ("good", "bad", "close")


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


def _latency_samples(
    rng: np.random.Generator, rollouts: int, scale: float, sigma: float
) -> np.ndarray:
    return (LATENCY_MEDIAN_S * scale) * np.exp(
        sigma * rng.standard_normal((rollouts, LATENCY_HORIZON)).astype(np.float32)
    )


def _cumulative_histograms(samples: np.ndarray, bounds: np.ndarray) -> np.ndarray:
    """(rollouts, checks, buckets) cumulative counts at every STEP requests."""
    rollouts = samples.shape[0]
    buckets = len(bounds)
    index = np.searchsorted(bounds, samples, side="left")  # value <= bound[index]
    checks = samples.shape[1] // STEP
    per_chunk = np.empty((rollouts, checks, buckets), dtype=np.int32)
    offsets = (np.arange(rollouts) * buckets)[:, None]
    for j in range(checks):
        chunk = index[:, j * STEP : (j + 1) * STEP] + offsets
        per_chunk[:, j, :] = np.bincount(chunk.ravel(), minlength=rollouts * buckets).reshape(
            rollouts, buckets
        )
    # cumulative over time, then over buckets (le semantics)
    return per_chunk.cumsum(axis=1).cumsum(axis=2)


def latency_stops(
    config: AnalysisConfig, stable_hist: np.ndarray, canary_hist: np.ndarray, bounds: np.ndarray
) -> np.ndarray:
    """First check at which the P99 check fails (relative or cap); -1 if never."""
    rollouts, checks, _ = stable_hist.shape
    failed_any = np.zeros((rollouts, checks), dtype=bool)
    half_alpha, q, w = config.alpha / 2, config.latency_quantile, config.quantile_mixture_weight
    limit = math.log1p(config.p99_tolerance)
    for j in range(checks):
        n = (j + 1) * STEP
        if n < config.min_requests:
            continue
        lo, hi = binomial_count_bounds(n, q, half_alpha, w)
        _, s_upper = bounds_from_counts(bounds, stable_hist[:, j, :], lo, hi)
        c_lower, c_upper = bounds_from_counts(bounds, canary_hist[:, j, :], lo, hi)
        with np.errstate(divide="ignore", invalid="ignore"):
            harm_lower = np.where(
                (c_lower > 0) & np.isfinite(s_upper), np.log(c_lower / s_upper), -np.inf
            )
        failed, _ = crossed(harm_lower, np.inf, limit)
        if config.p99_cap_seconds is not None:
            cap_failed, _ = crossed(c_lower, c_upper, config.p99_cap_seconds)
            failed = failed | cap_failed
        failed_any[:, j] = failed
    return _first_true(failed_any)


def _mann_whitney_min_p(stable: np.ndarray, canary: np.ndarray) -> np.ndarray:
    """Kayenta-style: one-sided Mann-Whitney p-value (canary slower) at every MW_STEP."""
    sizes = range(MW_STEP, LATENCY_HORIZON + 1, MW_STEP)
    pvalues = np.stack(
        [
            mannwhitneyu(
                canary[:, :n], stable[:, :n], alternative="greater", axis=1, method="asymptotic"
            ).pvalue
            for n in sizes
        ],
        axis=1,
    )
    return pvalues


def _latency_scenarios(
    config: AnalysisConfig, rng: np.random.Generator, rollouts: int, say: Progress
) -> dict[str, Any]:
    bounds = contract_buckets()
    z99 = 2.3263478740408408
    # "tail": the canary's P99 is 25% worse with the same median (a heavier tail);
    # "scaled": every request is 25% slower.
    tail_sigma = LATENCY_SIGMA + math.log(P99_REGRESSION) / z99
    scenarios = {
        "a_a": (1.0, LATENCY_SIGMA),
        "p99_25pct_worse_tail": (1.0, tail_sigma),
        "p99_25pct_worse_scaled": (P99_REGRESSION, LATENCY_SIGMA),
    }
    out: dict[str, Any] = {
        "distribution": {
            "stable_median_ms": LATENCY_MEDIAN_S * 1000,
            "stable_p99_ms": LATENCY_MEDIAN_S * math.exp(LATENCY_SIGMA * z99) * 1000,
            "buckets": "docs/metrics.md (ratio 1.1 from 5 ms)",
        },
        "tolerance": config.p99_tolerance,
        "min_requests": config.min_requests,
    }
    mw_min_p: dict[str, np.ndarray] = {}
    mw_pvalues: dict[str, np.ndarray] = {}
    for name, (scale, sigma) in scenarios.items():
        say(f"latency: {name}")
        stable = _latency_samples(rng, rollouts, 1.0, LATENCY_SIGMA)
        canary = _latency_samples(rng, rollouts, scale, sigma)
        stops = latency_stops(
            config,
            _cumulative_histograms(stable, bounds),
            _cumulative_histograms(canary, bounds),
            bounds,
        )
        summary = _stop_summary(stops, STEP, LATENCY_HORIZON)
        if name == "a_a":
            out[name] = {"false_rollback": summary["share_caught"], "rollouts": rollouts}
        else:
            out[name] = {"analysis": summary}
        pvalues = _mann_whitney_min_p(stable, canary)
        mw_pvalues[name] = pvalues
        mw_min_p[name] = pvalues.min(axis=1)
        del stable, canary
    # Tune the Mann-Whitney level on this run's A/A rollouts to 1% false rollbacks.
    level = float(np.quantile(mw_min_p["a_a"], TARGET_FALSE_ROLLBACK, method="lower"))
    out["a_a"]["mann_whitney_false_rollback"] = float((mw_min_p["a_a"] < level).mean())
    for name in scenarios:
        if name == "a_a":
            continue
        stops = _first_true(mw_pvalues[name] < level)
        out[name]["mann_whitney_baseline"] = {
            "p_value_threshold": level,
            "checked_every": MW_STEP,
            **_stop_summary(stops, MW_STEP, LATENCY_HORIZON),
        }
    out["goal"] = "median requests per arm before rollback <= 2000"
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
    checkpoint cache (building ``good``, ``bad`` and ``close`` if needed).
    """
    say = progress or (lambda message: None)
    config = config or AnalysisConfig()
    started = time.monotonic()
    rng = np.random.default_rng(seed)
    say("loading the real checkpoints' test predictions")
    real = real if real is not None else load_real_outcomes()
    measured = discordance(real["good"], real["close"])
    results: dict[str, Any] = {
        "seed": seed,
        "rollouts": rollouts,
        "check_every": STEP,
        "horizon_labels_per_arm": HORIZON,
        "config": config.to_dict(),
        "paired_discordance_source": "good vs close checkpoints on the test split",
    }
    results["accuracy"] = _accuracy_scenarios(config, rng, rollouts, measured, say)
    independent = 2 * STABLE_ACCURACY * (1 - STABLE_ACCURACY) + 0.05 * (2 * STABLE_ACCURACY - 1)
    results["accuracy"]["drop_5_points_discordance_sweep"] = _discordance_sweep(
        config,
        rng,
        rollouts,
        {
            "good_vs_close": measured,
            "good_vs_bad": discordance(real["good"], real["bad"]),
            "independent_errors": independent,
        },
    )
    results["latency"] = _latency_scenarios(config, rng, rollouts, say)
    say("replaying the real checkpoints")
    results["real_checkpoints"] = {
        f"{s}_to_{c}": _replay(config, rng, rollouts, real[s], real[c])
        for s, c in (("good", "bad"), ("good", "close"), ("good", "good"))
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
    rows.append(f"| latency A/A: false rollbacks | {lat['a_a']['false_rollback']:.1%} | | |")
    for key in ("p99_25pct_worse_tail", "p99_25pct_worse_scaled"):
        rows.append(f"| latency {key} (requests) | {_fmt(lat[key]['analysis'])} |")
        rows.append(
            f"| latency {key}, Mann-Whitney (1% A/A) | {_fmt(lat[key]['mann_whitney_baseline'])} |"
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
