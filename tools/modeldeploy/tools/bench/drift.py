"""``modeldeploy-dev bench --suite drift``: the label-free checks, measured.

Two parts, both running the operator's own pure code (``analysis.drift_stats`` vectorised
over simulated rollouts, ``analysis.drift`` per rollout), peeking as the tick does:

1. **Simulated counts** (2,000 rollouts per scenario): how often a 5-point prediction-mix
   shift is flagged (failed) within 2,000 requests per arm, with the router's paired
   inputs (local mode scores every canary input on stable too), with the joiner's sampled
   pairing on KServe (independent arms, 20% of each arm's requests re-scored on the other)
   and with no pairs at all; and how often identical models are flagged (false flags), for
   the two-class mix and for a 14-bucket histogram (the confidence and length signals).
   For unpaired arms also: the textbook arithmetic (standard error, fixed-sample power),
   the requests per arm the implemented test needs to flag 95% of rollouts, and the
   mixture scale swept (is the default near the best an always-valid test of this family
   does?).
2. **Real checkpoints**: the cached ``good`` (stable), ``close`` and ``bad`` checkpoints
   score the demo's traffic sentences (the held-out test split) in-process; simulated demo
   traffic (random sentences, canary at 50%, every canary input also scored by stable)
   feeds their predictions, confidences, lengths and agreements through the same checks
   with the default limits. Reported: after how many canary requests ``bad`` is flagged,
   by which signal, against when the labelled accuracy check would fail even if every
   label arrived at once; and whether ``close`` (equal quality) is ever flagged.

Every figure is measured when the suite runs; nothing here is a constant to quote.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from modeldeploy.operator.analysis.accuracy import check_accuracy
from modeldeploy.operator.analysis.config import AnalysisConfig
from modeldeploy.operator.analysis.drift import run_drift_checks
from modeldeploy.operator.analysis.drift_stats import max_shift_interval
from modeldeploy.operator.analysis.observations import (
    Agreement,
    ArmObservations,
    DriftCounts,
    LatencyHistogram,
    Observations,
    PairedCounts,
)
from modeldeploy.operator.analysis.verdict import CheckStatus, crossed

Progress = Callable[[str], None]

RUNS = 2000
LOOK_EVERY = 50  # requests per arm between looks (a tick sees tens of requests)
HORIZON = 2000  # requests per arm: the goal's budget
A_A_HORIZON = 10_000  # identical models are watched five times longer
UNPAIRED_HORIZONS = {"default_limit": 30_000, "limit_0_5_points": 12_000}
"""How far the unpaired study follows a 5-point shift (past where 95% are flagged)."""
CONFIDENCE_EDGES = (0.5, 0.55, 0.6, 0.65, 0.7, 0.75, 0.8, 0.85, 0.9, 0.95, 0.98, 0.99, 1.0)
TOKEN_EDGES = (4, 8, 16, 24, 32, 48, 64, 96, 128, 192, 256, 384, 512)
ALL_SIGNALS = {
    s: {"enabled": True}
    for s in ("predictions", "confidence", "inputTokens", "truncation", "agreement")
}


def _config() -> AnalysisConfig:
    return AnalysisConfig.model_validate({"drift": ALL_SIGNALS})


def _summary(first: np.ndarray, horizon: int) -> dict[str, Any]:
    """Share flagged by ``horizon``, and the median / p95 requests per arm when flagged."""
    hit = np.isfinite(first) & (first <= horizon)
    out: dict[str, Any] = {"runs": int(first.size), "flagged_share": float(hit.mean())}
    out["median_requests"] = float(np.median(first[hit])) if hit.any() else None
    out["p95_requests"] = float(np.percentile(first[hit], 95)) if hit.any() else None
    return out


def _first_flags(
    draw: Callable[[np.random.Generator, int], tuple[np.ndarray, ...]],
    horizon: int,
    limit: float,
    seed: int,
    config: AnalysisConfig,
) -> np.ndarray:
    """Requests per arm at the first look whose bound failed, NaN where none did."""
    rng = np.random.default_rng(seed)
    first = np.full(RUNS, np.nan)
    total: list[np.ndarray] | None = None
    for n in range(LOOK_EVERY, horizon + 1, LOOK_EVERY):
        step = draw(rng, LOOK_EVERY)
        total = list(step) if total is None else [t + s for t, s in zip(total, step, strict=True)]
        canary, stable, *paired = total
        # paired: only canary, only stable, pairs (per rollout), the table's two margins
        flips = (paired[0], paired[1], paired[2][..., None], *paired[3:]) if paired else None
        lower, upper, _, _ = max_shift_interval(
            canary, stable, alpha=config.alpha, scale=config.drift.mixture_scale, flips=flips
        )
        failed, _ = crossed(lower, upper, limit)
        first = np.where(np.isnan(first) & failed, n, first)
    return first


def _unpaired(p_stable: np.ndarray, p_canary: np.ndarray) -> Callable[..., tuple[np.ndarray, ...]]:
    def draw(rng: np.random.Generator, n: int) -> tuple[np.ndarray, ...]:
        return (
            rng.multinomial(n, p_canary, size=RUNS).astype(float),
            rng.multinomial(n, p_stable, size=RUNS).astype(float),
        )

    return draw


def _paired(up: float, down: float) -> Callable[..., tuple[np.ndarray, ...]]:
    """Both arms score each input (50/50 classes): ``up`` of stable's negatives become
    positive in the canary's answer, ``down`` of its positives negative."""

    def draw(rng: np.random.Generator, n: int) -> tuple[np.ndarray, ...]:
        positive = rng.binomial(n, 0.5, size=RUNS)
        negative = n - positive
        rises = rng.binomial(negative, up)
        falls = rng.binomial(positive, down)
        stable = np.stack([negative, positive], axis=-1).astype(float)
        canary = np.stack([negative - rises + falls, positive + rises - falls], -1)
        only_c = np.stack([falls, rises], axis=-1).astype(float)  # canary said it, stable not
        only_s = np.stack([rises, falls], axis=-1).astype(float)
        canary = canary.astype(float)
        # every input is a pair: the table's margins are the arms' counts
        return canary, stable, only_c, only_s, np.full(RUNS, float(n)), canary, stable

    return draw


def _sampled(share: float, up: float, down: float) -> Callable[..., tuple[np.ndarray, ...]]:
    """KServe with the joiner's sampled pairing: each arm answers its own ``n`` requests
    (independent inputs, 50/50 classes by stable's answer, flips as in :func:`_paired`), and
    ``share`` of each arm's requests is re-scored on the other arm. A re-score counts in the
    prediction mix of the arm that scored it (a predictor counts every request), and each
    re-scored input is one pair."""

    def own(rng: np.random.Generator, n: int) -> tuple[np.ndarray, ...]:
        positive = rng.binomial(n, 0.5, size=RUNS)
        negative = n - positive
        return negative, positive, rng.binomial(negative, up), rng.binomial(positive, down)

    def draw(rng: np.random.Generator, n: int) -> tuple[np.ndarray, ...]:
        c_neg, c_pos, c_rise, c_fall = own(rng, n)  # the canary's requests
        s_neg, s_pos, s_rise, s_fall = own(rng, n)  # stable's
        # the sampled share of each cell (stayed negative, stayed positive, rose, fell)
        c_cells = [rng.binomial(k, share) for k in (c_neg - c_rise, c_pos - c_fall, c_rise, c_fall)]
        s_cells = [rng.binomial(k, share) for k in (s_neg - s_rise, s_pos - s_fall, s_rise, s_fall)]
        canary = np.stack(
            [
                c_neg - c_rise + c_fall + s_cells[0] + s_cells[3],  # + its answers on stable's
                c_pos + c_rise - c_fall + s_cells[1] + s_cells[2],
            ],
            axis=-1,
        )
        stable = np.stack(
            [s_neg + c_cells[0] + c_cells[2], s_pos + c_cells[1] + c_cells[3]], axis=-1
        )
        stay_neg, stay_pos = c_cells[0] + s_cells[0], c_cells[1] + s_cells[1]
        rises, falls = c_cells[2] + s_cells[2], c_cells[3] + s_cells[3]
        only_c = np.stack([falls, rises], axis=-1)
        only_s = np.stack([rises, falls], axis=-1)
        pairs = stay_neg + stay_pos + rises + falls
        said_c = np.stack([stay_neg + falls, stay_pos + rises], axis=-1)
        said_s = np.stack([stay_neg + rises, stay_pos + falls], axis=-1)
        parts = (canary, stable, only_c, only_s, pairs, said_c, said_s)
        return tuple(a.astype(float) for a in parts)

    return draw


def _requests_for(first: np.ndarray, share: float) -> float | None:
    """Requests per arm by which ``share`` of the rollouts were flagged (None: not within
    the horizon)."""
    ordered = np.sort(np.where(np.isnan(first), np.inf, first))
    value = float(ordered[max(int(np.ceil(share * ordered.size)) - 1, 0)])
    return value if np.isfinite(value) else None


def unpaired_arithmetic(limit: float, shift: float = 0.05, n: int = HORIZON) -> dict[str, Any]:
    """What any test can do with ``n`` independent requests per arm, a class share near 0.5
    and a ``shift``-point move (fixed-sample normal approximations: an upper bound on what a
    test that may look at every tick can do)."""
    from scipy.stats import norm

    p_s, p_c = 0.5, 0.5 - shift
    se = float(np.sqrt(p_s * (1 - p_s) / n + p_c * (1 - p_c) / n))
    per_arm_var = p_s * (1 - p_s) + p_c * (1 - p_c)

    def power(margin: float, alpha: float) -> float:
        return float(norm.cdf(margin / se - norm.ppf(1 - alpha)))

    def needed(margin: float, alpha: float) -> float:
        return float((norm.ppf(1 - alpha) + norm.ppf(0.95)) ** 2 * per_arm_var / margin**2)

    return {
        "requests_per_arm": n,
        "shift": shift,
        "standard_error": se,
        "z_against_no_shift": shift / se,
        "fixed_power_two_sided_1pct_against_no_shift": power(shift, 0.005),
        "fixed_power_one_sided_1pct_against_no_shift": power(shift, 0.01),
        "fixed_power_one_sided_2_5pct_against_limit": power(shift - limit, 0.025),
        "fixed_requests_per_arm_95pct_one_sided_1pct_against_no_shift": needed(shift, 0.01),
        "fixed_requests_per_arm_95pct_one_sided_2_5pct_against_limit": needed(shift - limit, 0.025),
    }


def share_sweep(progress: Progress, config: AnalysisConfig, limit: float) -> dict[str, Any]:
    """KServe with sampled pairing at several shares: a 5-point shift made of flips (5% of
    inputs, and 9% with 4% flipping back) flagged within 2,000 requests per arm."""
    out: dict[str, Any] = {}
    for share in (0.1, 0.2, 0.3, 0.5):
        row = {}
        for name, up, down in (("flips_5pct", 0.10, 0.0), ("flips_9pct", 0.14, 0.04)):
            progress(f"KServe, {share:.0%} of requests paired, {name}")
            first = _first_flags(_sampled(share, up, down), HORIZON, limit, 300, config)
            row[name] = {
                "flagged_share_within_2000": float(np.mean(first <= HORIZON)),
                "requests_per_arm_for_95pct": _requests_for(first, 0.95),
            }
        out[f"{share:g}"] = row
    meets = [
        float(k) for k, row in out.items() if row["flips_5pct"]["flagged_share_within_2000"] >= 0.95
    ]
    out["smallest_share_meeting_goal_flips_5pct"] = min(meets) if meets else None
    return out


def unpaired_study(progress: Progress, config: AnalysisConfig, limit: float) -> dict[str, Any]:
    """The implemented test on unpaired arms: requests per arm to flag 95% of 5-point shifts
    (default limit and a strict one), and the mixture scale swept at 2,000 requests."""
    half, moved = np.array([0.5, 0.5]), np.array([0.45, 0.55])
    out: dict[str, Any] = {"arithmetic": unpaired_arithmetic(limit)}
    for name, lim in (("default_limit", limit), ("limit_0_5_points", 0.005)):
        horizon = UNPAIRED_HORIZONS[name]
        progress(f"unpaired 5-point shift, limit {lim}: {RUNS} rollouts to {horizon} per arm")
        first = _first_flags(_unpaired(half, moved), horizon, lim, 100, config)
        out[f"requests_per_arm_95pct_{name}"] = {
            "limit": lim,
            "horizon": horizon,
            "flagged_share_within_2000": float(np.mean(first <= HORIZON)),
            "requests_per_arm_for_95pct": _requests_for(first, 0.95),
            "requests_per_arm_for_50pct": _requests_for(first, 0.5),
        }
    sweep = {}
    for scale in (0.02, 0.03, 0.05, 0.07):
        progress(f"mixture scale {scale}: unpaired shift and identical arms")
        tuned = AnalysisConfig.model_validate({"drift": {**ALL_SIGNALS, "mixtureScale": scale}})
        shift = _first_flags(_unpaired(half, moved), HORIZON, limit, 200, tuned)
        same = _first_flags(_unpaired(half, half), A_A_HORIZON, limit / 4, 201, tuned)
        sweep[f"{scale:g}"] = {
            "shift_flagged_share_within_2000": float(np.mean(shift <= HORIZON)),
            "identical_flagged_share_quarter_limit": float(np.mean(np.isfinite(same))),
        }
    out["mixture_scale_sweep"] = {"default": config.drift.mixture_scale, "scales": sweep}
    return out


def simulated(progress: Progress) -> dict[str, Any]:
    config = _config()
    limit = config.drift.predictions.max_shift
    half = np.array([0.5, 0.5])
    out: dict[str, Any] = {
        "runs": RUNS,
        "look_every_requests": LOOK_EVERY,
        "limit_points": limit * 100,
        "confidence": config.confidence,
    }
    scenarios = {
        "shift_5_points_paired_flips_5pct": (_paired(0.10, 0.0), HORIZON, limit),
        "shift_5_points_paired_flips_9pct": (_paired(0.14, 0.04), HORIZON, limit),
        "shift_5_points_kserve_sampled_20pct_flips_5pct": (
            _sampled(0.2, 0.10, 0.0),
            HORIZON,
            limit,
        ),
        "shift_5_points_kserve_sampled_20pct_flips_9pct": (
            _sampled(0.2, 0.14, 0.04),
            HORIZON,
            limit,
        ),
        "shift_5_points_unpaired": (_unpaired(half, np.array([0.45, 0.55])), HORIZON, limit),
        "identical_kserve_sampled_20pct": (_sampled(0.2, 0.0, 0.0), A_A_HORIZON, limit),
        "equal_quality_kserve_sampled_20pct_flips_5pct_each_way": (
            _sampled(0.2, 0.05, 0.05),
            A_A_HORIZON,
            limit,
        ),
        "identical_unpaired_2_classes": (_unpaired(half, half), A_A_HORIZON, limit),
        "equal_quality_paired_flips_5pct_each_way": (_paired(0.05, 0.05), A_A_HORIZON, limit),
    }
    shares = np.array([1, 1, 2, 2, 3, 4, 5, 7, 10, 15, 20, 15, 15, 0], dtype=float)
    shares /= shares.sum()
    wide = config.drift.confidence.max_shift
    scenarios["identical_unpaired_14_buckets"] = (_unpaired(shares, shares), A_A_HORIZON, wide)
    # validity margin: the same identical arms against a limit a quarter of the default
    strict = limit / 4
    scenarios["identical_unpaired_2_classes_quarter_limit"] = (
        _unpaired(half, half),
        A_A_HORIZON,
        strict,
    )
    for seed, (name, (draw, horizon, lim)) in enumerate(scenarios.items()):
        progress(f"{name}: {RUNS} rollouts to {horizon} requests per arm")
        first = _first_flags(draw, horizon, lim, seed, config)
        out[name] = {
            **_summary(first, horizon),
            "horizon": horizon,
            "limit": lim,
            "requests_per_arm_for_95pct": _requests_for(first, 0.95),
        }
    goal = out["shift_5_points_paired_flips_5pct"]["flagged_share"]
    out["goal_shift_flagged_95pct_within_2000"] = bool(goal >= 0.95)
    kserve = out["shift_5_points_kserve_sampled_20pct_flips_5pct"]["flagged_share"]
    out["goal_shift_flagged_95pct_within_2000_kserve_sampled_20pct"] = bool(kserve >= 0.95)
    out["kserve_share_sweep"] = share_sweep(progress, config, limit)
    out["unpaired"] = unpaired_study(progress, config, limit)
    worst_false = max(
        out[k]["flagged_share"]
        for k in (
            "identical_unpaired_2_classes",
            "identical_unpaired_14_buckets",
            "identical_kserve_sampled_20pct",
        )
    )
    out["goal_false_flags_at_most_1pct"] = bool(worst_false <= 0.01)
    return out


# --- real checkpoints ------------------------------------------------------------------


@dataclass(frozen=True)
class Scored:
    """One checkpoint's answers on the traffic sentences."""

    name: str
    label: np.ndarray  # predicted class index
    confidence: np.ndarray  # top-class probability
    tokens: np.ndarray  # tokens after truncation
    truncated: np.ndarray  # bool
    classes: tuple[str, ...]


def score(name: str, texts: list[str], progress: Progress) -> Scored:
    """Score the cached checkpoint ``name`` in-process, as its predictor would.

    The answers are cached next to the checkpoint cache (``drift/<checkpoint>-<texts>.npz``):
    scoring takes minutes on shared cores, and the checkpoint directory's name carries its
    recipe's key, so a rebuilt checkpoint is scored again.
    """
    import hashlib
    import json

    from transformers import AutoTokenizer

    from modeldeploy.tools.checkpoints.evaluate import predict_directory
    from modeldeploy.tools.checkpoints.factory import build, cache_root

    path = build(name, progress)
    config = json.loads((path / "config.json").read_text())
    id2label = config.get("id2label") or {}
    digest = hashlib.sha256("\n".join(texts).encode()).hexdigest()[:12]
    cached = cache_root() / "drift" / f"{path.name}-{digest}.npz"
    if cached.exists():
        data = np.load(cached)
        classes = tuple(id2label.get(str(i), str(i)) for i in range(int(data["k"])))
        return Scored(
            name, data["label"], data["confidence"], data["tokens"], data["truncated"], classes
        )
    progress(f"scoring {name} on {len(texts)} sentences in-process")
    tokenizer = AutoTokenizer.from_pretrained(path)
    limit = min(int(getattr(tokenizer, "model_max_length", 512) or 512), 512)
    probs = predict_directory(path, texts, max_length=limit)
    lengths = np.array([len(ids) for ids in tokenizer(list(texts))["input_ids"]])
    classes = tuple(id2label.get(str(i), str(i)) for i in range(probs.shape[1]))
    scored = Scored(
        name,
        probs.argmax(axis=1),
        probs.max(axis=1),
        np.minimum(lengths, limit),
        lengths > limit,
        classes,
    )
    cached.parent.mkdir(parents=True, exist_ok=True)
    np.savez(
        cached,
        label=scored.label,
        confidence=scored.confidence,
        tokens=scored.tokens,
        truncated=scored.truncated,
        k=len(classes),
    )
    return scored


def _histogram(values: np.ndarray, edges: tuple[float, ...]) -> LatencyHistogram:
    """Prometheus buckets (``le``, then ``+Inf``) of ``values``, as the predictor counts."""
    per_bucket = np.bincount(np.searchsorted(edges, values, side="left"), minlength=len(edges) + 1)
    bounds = (*(float(e) for e in edges), float("inf"))
    return LatencyHistogram(bounds, tuple(int(c) for c in np.cumsum(per_bucket)))


def _arm(model: Scored, idx: np.ndarray, correct: np.ndarray) -> ArmObservations:
    counts = np.bincount(model.label[idx], minlength=len(model.classes))
    drift = DriftCounts(
        predictions={c: int(counts[i]) for i, c in enumerate(model.classes)},
        confidence=_histogram(model.confidence[idx], CONFIDENCE_EDGES),
        tokens=_histogram(model.tokens[idx], TOKEN_EDGES),
        truncated=int(model.truncated[idx].sum()),
    )
    right = int(correct[idx].sum())
    return ArmObservations(right, int(idx.size), requests={"ok": int(idx.size)}, drift=drift)


def _observe(stable: Scored, canary: Scored, truth: np.ndarray, own, paired) -> Observations:
    """Stable's own requests plus the canary's (paired) inputs; canary's inputs."""
    s_ok, c_ok = stable.label == truth, canary.label == truth
    stable_idx = np.concatenate([own, paired])
    k = len(stable.classes)
    joint = np.bincount(stable.label[paired] * k + canary.label[paired], minlength=k * k)
    table = {
        (stable.classes[i // k], canary.classes[i % k]): int(v) for i, v in enumerate(joint) if v
    }
    agree = sum(v for (s, c), v in table.items() if s == c)
    a, b = s_ok[paired], c_ok[paired]
    pairs = PairedCounts(
        int((a & b).sum()), int((a & ~b).sum()), int((~a & b).sum()), int((~a & ~b).sum())
    )
    return Observations(
        _arm(stable, stable_idx, s_ok),
        _arm(canary, paired, c_ok),
        pairs,
        agreement=Agreement(agree, int(paired.size) - agree, table),
    )


def demo_rollouts(
    stable: Scored,
    canary: Scored,
    truth: np.ndarray,
    *,
    runs: int,
    horizon: int,
    look_every: int,
    seed: int,
) -> dict[str, Any]:
    """Simulated demo traffic at 50%: first canary request count at which each check fails."""
    config = _config()
    rng = np.random.default_rng(seed)
    n = truth.size
    first: dict[str, list[float]] = {}
    for _ in range(runs):
        own = rng.integers(0, n, size=horizon)  # stable's own requests (weight 50%)
        paired = rng.integers(0, n, size=horizon)  # the canary's, also scored by stable
        hits: dict[str, float] = {}
        for k in range(look_every, horizon + 1, look_every):
            obs = _observe(stable, canary, truth, own[:k], paired[:k])
            results = [*run_drift_checks(config, obs), check_accuracy(config, obs)]
            for result in results:
                if result.status is CheckStatus.FAIL and result.name not in hits:
                    hits[result.name] = float(k)
            if "accuracy" in hits and any(name.startswith("drift_") for name in hits):
                break
        drift_hits = [v for key, v in hits.items() if key.startswith("drift_")]
        hits["any_drift"] = min(drift_hits) if drift_hits else float("nan")
        for name in (*(f"drift_{s}" for s in config.drift.enabled), "accuracy", "any_drift"):
            first.setdefault(name, []).append(hits.get(name, float("nan")))
    return {name: _summary(np.array(values), horizon) for name, values in first.items()}


def checkpoints(progress: Progress, runs: int = 200, horizon: int = 3000) -> dict[str, Any]:
    from modeldeploy.tools.checkpoints.data import load_split

    test = load_split("test")
    texts, truth = list(test.texts), np.array(test.labels)
    scored = {name: score(name, texts, progress) for name in ("good", "close", "bad")}
    out: dict[str, Any] = {
        "sentences": len(texts),
        "runs": runs,
        "horizon_canary_requests": horizon,
        "look_every_canary_requests": LOOK_EVERY,
        "canary_weight_percent": 50,
        "paired_share_percent": 100,
        "accuracy_on_sentences": {k: float((v.label == truth).mean()) for k, v in scored.items()},
        "disagreement_with_good": {
            k: float((v.label != scored["good"].label).mean()) for k, v in scored.items()
        },
        "mean_confidence": {k: float(v.confidence.mean()) for k, v in scored.items()},
        "positive_share": {k: float(v.label.mean()) for k, v in scored.items()},
    }
    for name in ("bad", "close"):
        progress(f"good -> {name}: {runs} simulated demo rollouts")
        out[name] = demo_rollouts(
            scored["good"],
            scored[name],
            truth,
            runs=runs,
            horizon=horizon,
            look_every=LOOK_EVERY,
            seed=len(name),
        )
    bad, close = out["bad"], out["close"]
    out["goal_bad_flagged_before_labels"] = bool(
        bad["any_drift"]["flagged_share"] >= 0.95
        and (bad["accuracy"]["median_requests"] or np.inf) > (bad["any_drift"]["median_requests"])
    )
    out["goal_close_not_flagged"] = bool(close["any_drift"]["flagged_share"] <= 0.01)
    return out


def run_suite(output_dir: Path, progress: Progress | None = None) -> dict[str, Any]:
    """The ``modeldeploy-dev bench`` suite entry: the caller writes bench/results.json."""
    del output_dir  # no files of its own
    say = progress or (lambda message: None)
    return {"simulated": simulated(say), "checkpoints": checkpoints(say)}
