"""The rollout benchmark drives the real controller and reports what bench/results.json keeps."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from prometheus_client import CollectorRegistry

from modeldeploy.operator.metrics.base import AnalysisTarget
from modeldeploy.tools.bench import rollouts
from modeldeploy.tools.bench.sim_world import (
    SimPlatform,
    SimProvider,
    lognormal_bucket_probs,
    warmup_split,
)
from modeldeploy.tools.bench.traffic import Traffic, Truth


def test_a_small_run_drives_the_controller_and_reports_the_shape() -> None:
    cells = [c for c in rollouts.matrix() if c.name in ("equal baseline 10/s", "worse 5pt 10/s")]
    messages: list[str] = []
    results = rollouts.run(runs=3, cells=cells, horizon_s=1800, progress=messages.append)
    json.dumps(results, allow_nan=False)
    assert [c["name"] for c in results["cells"]] == ["equal baseline 10/s", "worse 5pt 10/s"]
    for cell in results["cells"]:
        assert {
            "name",
            "truth",
            "runs",
            "promoted",
            "rolled_back",
            "held",
            "median_minutes",
        } <= set(cell)
        assert cell["promoted"] + cell["rolled_back"] + cell["held"] == 1.0
        assert cell["ticks_total"] > 3 * cell["runs"]  # the real tick ran, more than set-up
        assert cell["scrapes_total"] > 0
        assert cell["scrapes_checked_against_text"] > 0  # one rollout read exposition text
        assert "Progressing" in cell["phases_seen"]
    worse = results["cells"][1]
    assert worse["rolled_back"] == 1.0  # 5 points worse at 10 labels/s: caught in minutes
    assert "RolledBack" in worse["phases_seen"]
    summary = results["summary"]
    assert set(summary) >= {
        "max_false_rollback",
        "max_false_promotion",
        "median_minutes_equal_10_per_s",
    }
    assert summary["max_false_promotion"] == worse["promoted"]
    assert len(messages) == 2


def test_the_default_spec_is_what_runs() -> None:
    baseline = rollouts.matrix()[0]
    assert baseline.spec() == {"model": {"name": "m"}}
    first = next(c for c in rollouts.matrix() if c.first_share == 5)
    assert first.spec()["rollout"]["steps"][0] == 5


def test_a_pod_restart_resets_its_counters_and_the_text_matches_the_samples() -> None:
    world = SimPlatform()
    world.pods.clear()
    from modeldeploy.tools.bench.sim_world import SimPod

    world.pods["stable"] = SimPod("1", "stable", 0.0)
    world.pods["canary"] = SimPod("2", "canary", 0.0)
    world.weight["bench/m"] = 10
    traffic = Traffic(Truth(restart_at=90.0), 60.0, np.random.default_rng(0))
    provider = SimProvider(world, text=True)
    target = AnalysisTarget("m", "1", "2")
    traffic.advance(world, 60.0)
    first = provider.snapshot(target).sources["canary"]
    traffic.advance(world, 120.0)  # the canary restarts in this tick
    second = provider.snapshot(target).sources["canary"]
    assert second.start != first.start and second.restarted_since(first)
    assert provider.checked == 6  # both snapshots went through text and agreed


def test_the_warm_up_rule_and_the_latency_buckets() -> None:
    assert warmup_split(0, 50, 30) == (20, 10, 20)
    assert warmup_split(25, 50, 30) == (0, 5, 45)
    assert warmup_split(100, 50, 0) == (0, 0, 50)
    probs = lognormal_bucket_probs(0.02, 0.5)
    assert abs(probs.sum() - 1.0) < 1e-9 and (probs >= 0).all()


def test_every_label_pairs_when_the_router_pairs_per_label() -> None:
    truth = Truth(label_rate=50.0, pair_every_label=True)
    world = SimPlatform()
    from modeldeploy.tools.bench.sim_world import SimPod

    world.pods["stable"] = SimPod("1", "stable", 0.0)
    world.pods["canary"] = SimPod("2", "canary", 0.0)
    world.weight["bench/m"] = 10
    traffic = Traffic(truth, 60.0, np.random.default_rng(1))
    traffic.advance(world, 60.0)
    source = SimProvider(world, text=False).snapshot(AnalysisTarget("m", "1", "2"))
    stable, canary, paired = source.totals()
    assert paired is not None and stable is not None and canary is not None
    assert sum(paired) == stable.labelled == canary.labelled > 0
    only_shares = Traffic(replace(truth, pair_every_label=False), 60.0, np.random.default_rng(1))
    world2 = SimPlatform()
    world2.pods["stable"] = SimPod("1", "stable", 0.0)
    world2.pods["canary"] = SimPod("2", "canary", 0.0)
    world2.weight["bench/m"] = 10
    only_shares.advance(world2, 60.0)
    _, _, fewer = SimProvider(world2, text=False).snapshot(AnalysisTarget("m", "1", "2")).totals()
    assert fewer is not None and sum(fewer) < sum(paired) / 3


def test_the_fast_samples_are_the_registry_samples_through_restarts_and_new_series() -> None:
    from modeldeploy.tools.bench.sim_world import FastSamples, SimPod, samples_of

    world = SimPlatform()
    world.pods["stable"] = SimPod("1", "stable", 0.0)
    world.pods["canary"] = SimPod("2", "canary", 0.0)
    world.weight["bench/m"] = 10
    traffic = Traffic(Truth(restart_at=150.0, cold_requests=30), 60.0, np.random.default_rng(3))
    fast: dict[CollectorRegistry, FastSamples] = {}
    for t in (60.0, 120.0, 180.0, 240.0):  # the router's series appear; the canary restarts
        traffic.advance(world, t)
        for _, registry in world.registries():
            reader = fast.setdefault(registry, FastSamples(registry))
            assert reader() == samples_of(registry)


def test_cells_are_chosen_by_name_and_merged_under_rollouts(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert rollouts.main(["--cells", "no such cell"]) == 2
    assert capsys.readouterr().err.strip() == "no cell matches"
    assert rollouts.main(["--list", "--cells", "5pt 50,5pt 10"]) == 0
    assert capsys.readouterr().err.split("\n")[:2] == ["worse 5pt 10/s", "worse 5pt 50/s"]
    results = tmp_path / "results.json"
    results.write_text(json.dumps({"other": {"kept": True}}))
    args = ["--runs", "1", "--jobs", "1", "--cells", "5pt 50", "--merge", str(results)]
    assert rollouts.main(args) == 0
    written = json.loads(results.read_text())
    assert written["other"] == {"kept": True}
    assert [c["name"] for c in written["rollouts"]["cells"]] == ["worse 5pt 50/s"]
    assert written["rollouts"]["note"].startswith("REDUCED RUN: 1 rollouts per cell")
    assert written["rollouts"]["machine"]["cpus"] >= 1


def test_every_new_pod_registry_gets_series_of_its_own() -> None:
    """Pods come and go by the thousand in a matrix run; a collector cache keyed by
    ``id(registry)`` handed a new registry the dead one's collectors (no series at all)."""
    from modeldeploy.tools.bench.sim_world import FastSamples, SimPod

    for i in range(300):
        pod = SimPod("1", "stable", float(i))
        pod.ok.inc(3)
        names = {name for name, _, _ in FastSamples(pod.registry)()}
        assert any(name.startswith("modeldeploy_requests") for name in names), i
        del pod
