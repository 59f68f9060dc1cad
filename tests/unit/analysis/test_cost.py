"""Cost per 1k inferences: figures per arm, the costlier-canary note, and where they land."""

from __future__ import annotations

from dataclasses import replace

import pytest

from modeldeploy.operator.analysis import cost
from modeldeploy.operator.analysis.observations import ArmObservations, Observations
from modeldeploy.operator.analysis.verdict import Outcome, Verdict
from modeldeploy.operator.metrics.base import AnalysisTarget
from modeldeploy.operator.metrics.snapshot import ArmCounters, SourceCounters, collect
from modeldeploy.serving.contract import names


def arm(requests: int, cpu: float | None) -> ArmObservations:
    return ArmObservations(requests={"ok": requests}, cpu_seconds=cpu)


def test_cpu_seconds_per_1k_needs_cpu_time_and_enough_requests() -> None:
    assert cost.cpu_seconds_per_1k(arm(2000, 10.0)) == 5.0
    assert cost.cpu_seconds_per_1k(arm(2000, None)) is None
    assert cost.cpu_seconds_per_1k(arm(cost.MIN_REQUESTS - 1, 1.0)) is None


def test_numbers_with_and_without_a_price() -> None:
    obs = Observations(stable=arm(2000, 10.0), canary=arm(1000, 5.9))
    assert cost.numbers(obs, None) == {
        "stable_cpu_seconds_per_1k": 5.0,
        "canary_cpu_seconds_per_1k": 5.9,
        "canary_relative": 0.18,
    }
    priced = cost.numbers(obs, 3.6)
    assert priced["stable_per_1k"] == pytest.approx(0.005)
    assert priced["canary_per_1k"] == pytest.approx(0.0059)


@pytest.mark.parametrize(
    ("outcome", "canary_cpu", "noted"),
    [
        (Outcome.PASS, 5.9, True),  # 18% more: named
        (Outcome.PASS, 5.2, False),  # 4% more: within noise, not named
        (Outcome.PASS, 4.0, False),  # cheaper: nothing to warn about
        (Outcome.PENDING, 5.9, False),  # only a passing verdict becomes a promotion reason
    ],
)
def test_a_costlier_canary_is_named_in_a_passing_reason(
    outcome: Outcome, canary_cpu: float, noted: bool
) -> None:
    obs = Observations(stable=arm(2000, 10.0), canary=arm(1000, canary_cpu))
    verdict = cost.with_cost(Verdict(outcome, "all checks passed"), obs, None)
    assert ("costs 18% more per 1k inferences" in verdict.reason) is noted
    assert verdict.numbers["cost.canary_cpu_seconds_per_1k"] == canary_cpu
    assert verdict.outcome is outcome  # never a gate


def test_no_cpu_series_no_cost_numbers() -> None:
    verdict = Verdict(Outcome.PASS, "all checks passed", numbers={"a": 1})
    obs = Observations(stable=arm(2000, None), canary=arm(2000, None))
    assert cost.with_cost(verdict, obs, 1.0) == verdict
    assert cost.with_cost(verdict, None, 1.0) == verdict


def test_cpu_seconds_are_collected_per_arm_and_survive_the_status() -> None:
    target = AnalysisTarget("d", stable_version="1", canary_version="2")
    stable = {"deployment": "d", "model_version": "1", "role": "stable"}
    canary = {"deployment": "d", "model_version": "2", "role": "canary"}
    counters = collect(
        [
            (names.CPU_SECONDS, stable, 12.5),
            (names.CPU_SECONDS, canary, 3.0),
            (names.REQUESTS, {**canary, "outcome": "ok"}, 100.0),
        ],
        target,
    )
    assert counters.stable is not None and counters.stable.cpu_seconds == 12.5
    assert counters.canary is not None and counters.canary.cpu_seconds == 3.0
    assert SourceCounters.from_dict(counters.to_dict()) == counters
    later = replace(counters, canary=replace(counters.canary, cpu_seconds=4.5))
    assert later.minus(counters).canary.cpu_seconds == 1.5  # type: ignore[union-attr]
    restarted = replace(counters, canary=replace(counters.canary, cpu_seconds=0.2))
    assert restarted.restarted_since(counters)  # CPU time went down: a new process


def test_arms_without_cpu_time_stay_unknown_when_added() -> None:
    assert ArmCounters().plus(ArmCounters()).cpu_seconds is None
    assert ArmCounters(cpu_seconds=1.0).plus(ArmCounters()).cpu_seconds == 1.0
    assert ArmCounters.from_dict(ArmCounters().to_dict()).cpu_seconds is None


def test_the_chart_price_reaches_the_operator_settings() -> None:
    from modeldeploy.operator.settings import OperatorSettings

    assert OperatorSettings.from_env({}).cpu_core_hour == 0.0
    assert (
        OperatorSettings.from_env({"MODELDEPLOY_COST_CPU_CORE_HOUR": "0.04"}).cpu_core_hour == 0.04
    )
    for bad in ("cheap", "-1", "inf"):
        with pytest.raises(ValueError, match="MODELDEPLOY_COST_CPU_CORE_HOUR"):
            OperatorSettings.from_env({"MODELDEPLOY_COST_CPU_CORE_HOUR": bad})
