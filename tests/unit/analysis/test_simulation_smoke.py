"""The benchmark runs end to end on a few rollouts and reports every scenario the issue asks."""

from __future__ import annotations

import json

import numpy as np
import pytest

from modeldeploy.operator.analysis.config import AnalysisConfig
from modeldeploy.tools.bench import simulation


@pytest.mark.slow
def test_a_small_run_reports_every_scenario_and_renders_a_table() -> None:
    rng = np.random.default_rng(0)
    good = rng.random(800) < 0.8
    real = {"good": good, "reseed": good ^ (rng.random(800) < 0.05), "bad": rng.random(800) < 0.55}
    messages: list[str] = []
    config = AnalysisConfig()
    results = simulation.run(
        seed=1, rollouts=40, progress=messages.append, real=real, config=config
    )
    json.dumps(results, allow_nan=False)
    acc = results["accuracy"]
    assert acc["a_a"]["false_rollback_unpaired"] <= 0.05
    assert acc["drop_5_points"]["paired"]["share_caught"] >= 0.9
    assert set(acc["drop_5_points"]["baselines_unpaired"]) == {
        "fixed_threshold_k1",
        "fixed_threshold_k3",
        "fixed_threshold_k5",
    }
    latency = results["latency"]["sigma_0.5"]
    assert latency["p99_25pct_worse_tail"]["caught"]["share"] >= 0.9
    assert latency["a_a"]["false_rollback"] <= 0.05
    assert set(results["latency"]) >= {"sigma_0.5", "sigma_1", "goal", "tolerance"}
    assert results["real_checkpoints"]["good_to_bad"]["paired"]["share_caught"] == 1.0
    assert messages and "real checkpoints" in messages[-1]
    table = simulation.markdown_table(results)
    assert "| A/A unpaired: false rollbacks |" in table
    assert "| latency sigma 0.5, p99_25pct_worse_tail (requests) | " in table
