"""A tick prices GPU seconds per GPU-hour (spec, else the chart) and names a costlier GPU
canary in the promotion reason."""

from __future__ import annotations

from dataclasses import replace

import pytest

from modeldeploy.operator.analysis.observations import Observations
from tests.unit.operator.test_reconcile_cost import promote_a_canary
from tests.unit.operator.test_reconcile_readiness import GOOD, World

# 5,000 requests per arm (GOOD): 1 GPU-hour each is 720 allocated GPU seconds per 1k.
GPU_ARMS = Observations(
    stable=replace(GOOD.stable, cpu_seconds=10.0, gpu_seconds=3600.0, gpu_busy_seconds=50.0),
    canary=replace(GOOD.canary, cpu_seconds=10.0, gpu_seconds=3600.0, gpu_busy_seconds=65.0),
)


def test_promotion_reason_and_status_numbers_carry_the_gpu_cost() -> None:
    status = promote_a_canary(GPU_ARMS, {"cpuCoreHour": 0.036, "gpuHour": 3.6})
    numbers = status["lastAnalysis"]["numbers"]
    assert numbers["cost.canary_gpu_seconds_per_1k"] == 720.0
    assert numbers["cost.stable_gpu_busy_seconds_per_1k"] == 10.0
    assert numbers["cost.canary_gpu_busy_seconds_per_1k"] == 13.0
    assert numbers["cost.canary_relative"] == 0.3
    # 2 CPU s and 720 GPU s per 1k: 0.00002 + 0.72
    assert numbers["cost.canary_per_1k"] == pytest.approx(0.72002)
    promoted = [h for h in status["history"] if h["outcome"] == "Promoted"]
    assert promoted, status
    reason = promoted[-1]["reason"]
    assert "the canary costs 30% more per 1k inferences at equal GPU utilisation" in reason


def test_without_spec_gpu_hour_the_chart_price_is_used_and_without_any_no_money() -> None:
    world = World()
    world.windows.observations = GPU_ARMS
    world.platform.ready = True
    world.canary_started()
    world.deps.default_cpu_core_hour = 0.036
    numbers = world.run()["lastAnalysis"]["numbers"]
    assert "cost.stable_per_1k" not in numbers  # GPU seconds but no GPU price: no money
    assert numbers["cost.stable_gpu_seconds_per_1k"] == 720.0
    world.deps.default_gpu_hour = 1.8
    numbers = world.run()["lastAnalysis"]["numbers"]
    assert numbers["cost.stable_per_1k"] == pytest.approx(0.00002 + 0.36)


def test_the_chart_gpu_price_reaches_the_operator_settings() -> None:
    from modeldeploy.operator.settings import OperatorSettings

    assert OperatorSettings.from_env({}).gpu_hour == 0.0
    assert OperatorSettings.from_env({"MODELDEPLOY_COST_GPU_HOUR": "2.5"}).gpu_hour == 2.5
    with pytest.raises(ValueError, match="MODELDEPLOY_COST_GPU_HOUR"):
        OperatorSettings.from_env({"MODELDEPLOY_COST_GPU_HOUR": "-1"})


def test_the_gpu_price_is_exported_for_the_chart_rules_only_when_set() -> None:
    from prometheus_client import CollectorRegistry

    from modeldeploy.operator import telemetry

    def exported(cost: dict[str, float]) -> dict[str, float]:
        collector = telemetry._StateCollector()
        spec = {"model": {"name": "m"}, "cost": cost}
        collector.states[("ml", "s")] = telemetry.exported_state(spec, [])
        registry = CollectorRegistry()
        registry.register(collector)  # type: ignore[arg-type]
        return {s.name: s.value for f in registry.collect() for s in f.samples}

    assert exported({"gpuHour": 2.5}) == {telemetry.COST_GPU_HOUR: 2.5}
    assert exported({"cpuCoreHour": 0.04}) == {telemetry.COST_CPU_CORE_HOUR: 0.04}


def test_a_gpu_spec_whose_arms_report_no_gpu_seconds_gets_no_money_figure() -> None:
    world = World()
    world.body["spec"]["resources"] = {"gpu": 1}
    world.body["spec"]["cost"] = {"cpuCoreHour": 0.036, "gpuHour": 3.6}
    world.windows.observations = Observations(
        stable=replace(GOOD.stable, cpu_seconds=10.0), canary=replace(GOOD.canary, cpu_seconds=12.0)
    )
    world.platform.ready = True
    world.canary_started()
    numbers = world.run()["lastAnalysis"]["numbers"]
    assert numbers["cost.stable_cpu_seconds_per_1k"] == 2.0
    assert "cost.stable_per_1k" not in numbers and "cost.canary_relative" not in numbers
