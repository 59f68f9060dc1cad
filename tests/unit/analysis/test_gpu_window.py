"""GPU seconds in the analysis window: collected per arm, summed over replicas, carried in the
status, and a restarted predictor's counters (which start again at 0) never subtracted."""

from __future__ import annotations

import json

from modeldeploy.operator.analysis.observations import ArmObservations
from modeldeploy.operator.metrics.accumulate import WindowState
from modeldeploy.operator.metrics.base import AnalysisTarget
from modeldeploy.operator.metrics.snapshot import ArmCounters, Snapshot, SourceCounters, collect
from modeldeploy.serving.contract import names

TARGET = AnalysisTarget("d", stable_version="1", canary_version="2")
STABLE = {"deployment": "d", "model_version": "1", "role": "stable"}
CANARY = {"deployment": "d", "model_version": "2", "role": "canary"}


def source(
    requests: float,
    gpu: float | None,
    busy: float | None,
    start: float,
    cpu: float = 10.0,
) -> SourceCounters:
    """One scrape: a canary replica (and a stable one's requests), as ``collect`` reads it."""
    samples = [
        (names.REQUESTS, {**STABLE, "outcome": "ok"}, 10 * requests),
        (names.REQUESTS, {**CANARY, "outcome": "ok"}, requests),
        (names.CPU_SECONDS, CANARY, cpu),
        ("process_start_time_seconds", {}, start),
    ]
    if gpu is not None:
        samples.append((names.GPU_ALLOCATED_SECONDS, CANARY, gpu))
    if busy is not None:
        samples.append((names.GPU_BUSY_SECONDS, CANARY, busy))
    return collect(samples, TARGET)


def test_gpu_seconds_are_collected_per_arm_and_survive_the_status() -> None:
    counters = collect(
        [
            (names.GPU_ALLOCATED_SECONDS, STABLE, 7200.0),
            (names.GPU_BUSY_SECONDS, STABLE, 900.5),
            (names.GPU_DEVICES, STABLE, 2.0),  # a gauge: not a window count
            (names.CPU_SECONDS, CANARY, 3.0),
        ],
        TARGET,
    )
    assert counters.stable == ArmCounters(gpu_seconds=7200.0, gpu_busy_seconds=900.5)
    assert counters.canary is not None and counters.canary.gpu_seconds is None  # CPU arm
    assert SourceCounters.from_dict(json.loads(json.dumps(counters.to_dict()))) == counters


def test_the_window_adds_gpu_seconds_read_by_read_and_keeps_them_in_the_status() -> None:
    first = Snapshot({"pod-a": source(100, 3600.0, 40.0, 1.7e9)}, 1.7e9 + 3600)
    later = Snapshot({"pod-a": source(1100, 3660.0, 44.5, 1.7e9)}, 1.7e9 + 3660)
    state = WindowState.start("2", 0, first).advance(later)
    assert state.canary is not None
    assert state.canary.gpu_seconds == 60.0  # 1 GPU x 60 s: billed whatever the load
    assert state.canary.gpu_busy_seconds == 4.5
    assert WindowState.from_dict(json.loads(json.dumps(state.to_dict()))) == state
    canary = state.observations().canary
    assert (canary.gpu_seconds, canary.gpu_busy_seconds) == (60.0, 4.5)


def test_a_restarted_predictor_counts_from_zero_and_is_never_subtracted() -> None:
    before = Snapshot({"pod-a": source(5000, 9000.0, 300.0, 1.7e9)}, 1.7e9 + 9000)
    # The pod restarted: new start time, GPU seconds back near zero (30 s held since).
    after = Snapshot({"pod-a": source(200, 30.0, 2.0, 1.7e9 + 9010, cpu=1.0)}, 1.7e9 + 9040)
    state = WindowState.start("2", 0, before).advance(after)
    assert state.canary is not None
    assert state.canary.gpu_seconds == 30.0  # all of the new process, nothing negative
    assert state.canary.gpu_busy_seconds == 2.0


def test_gpu_seconds_going_down_alone_reveal_a_restart() -> None:
    """Without a start time (an exporter without the process collector), a lower GPU count
    is a reset, as for every other counter."""
    old = SourceCounters(canary=ArmCounters(requests={"ok": 10.0}, gpu_seconds=500.0))
    new = SourceCounters(canary=ArmCounters(requests={"ok": 10.0}, gpu_seconds=20.0))
    assert new.restarted_since(old)
    assert new.minus(old).canary == new.canary


def test_replicas_add_up_and_an_arm_without_gpus_stays_unknown() -> None:
    a = ArmCounters(gpu_seconds=60.0, gpu_busy_seconds=5.0)
    b = ArmCounters(gpu_seconds=60.0, gpu_busy_seconds=7.0)
    assert a.plus(b) == ArmCounters(gpu_seconds=120.0, gpu_busy_seconds=12.0)
    assert ArmCounters().plus(ArmCounters()).gpu_seconds is None


def test_observations_refuse_impossible_gpu_seconds() -> None:
    import pytest

    for bad in (-1.0, float("inf"), float("nan")):
        with pytest.raises(ValueError, match="gpu_seconds"):
            ArmObservations(gpu_seconds=bad)
    assert ArmObservations(gpu_seconds=1.5, gpu_busy_seconds=0.5).to_dict()["gpu_seconds"] == 1.5
