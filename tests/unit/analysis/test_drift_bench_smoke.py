"""The drift benchmark's code paths, small: the suite itself runs in `make bench`."""

from __future__ import annotations

import numpy as np
import pytest

from modeldeploy.tools.bench import drift as bench


def test_simulated_scenarios_run_and_report_shares(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(bench, "RUNS", 40)
    monkeypatch.setattr(bench, "A_A_HORIZON", 1000)
    monkeypatch.setattr(
        bench, "UNPAIRED_HORIZONS", {"default_limit": 2000, "limit_0_5_points": 2000}
    )
    out = bench.simulated(lambda message: None)
    paired = out["shift_5_points_paired_flips_5pct"]
    assert paired["runs"] == 40 and paired["flagged_share"] >= 0.8
    assert out["identical_unpaired_2_classes"]["flagged_share"] == 0.0
    assert out["identical_kserve_sampled_20pct"]["flagged_share"] == 0.0
    sweep = out["kserve_share_sweep"]
    assert sweep["0.5"]["flips_5pct"]["flagged_share_within_2000"] >= 0.8
    arithmetic = out["unpaired"]["arithmetic"]
    assert abs(arithmetic["standard_error"] - 0.01577) < 1e-4  # sqrt(.25/2000 + .2475/2000)


def scored(name: str, label: np.ndarray, confidence: np.ndarray) -> bench.Scored:
    n = label.size
    tokens = np.full(n, 20)
    return bench.Scored(name, label, confidence, tokens, np.zeros(n, bool), ("neg", "pos"))


def test_a_less_sure_canary_is_flagged_before_its_labels_could_fail_it() -> None:
    rng = np.random.default_rng(0)
    truth = rng.integers(0, 2, size=800)
    good = scored("good", truth.copy(), np.full(800, 0.97))
    flips = rng.random(800) < 0.2
    worse = scored("bad", np.where(flips, 1 - truth, truth), np.full(800, 0.62))
    out = bench.demo_rollouts(good, worse, truth, runs=3, horizon=600, look_every=100, seed=1)
    assert out["drift_confidence"]["flagged_share"] == 1.0
    assert out["any_drift"]["median_requests"] == 200.0
    same = bench.demo_rollouts(good, good, truth, runs=3, horizon=600, look_every=100, seed=2)
    assert same["any_drift"]["flagged_share"] == 0.0
