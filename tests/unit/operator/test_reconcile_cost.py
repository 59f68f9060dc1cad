"""A tick reports cost per 1k per arm in the status, and a costlier canary in its reason."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from modeldeploy.operator.analysis.observations import Observations
from tests.unit.operator.test_reconcile_readiness import GOOD, World


def promote_a_canary(observations: Observations, cost: dict[str, float]) -> dict[str, Any]:
    """The status after a one-step rollout whose arms show ``observations``, priced by
    ``spec.cost`` = ``cost``."""
    world = World(steps=[100])
    world.body["spec"]["cost"] = cost
    world.windows.observations = observations
    world.platform.ready = True
    world.registry.set_alias("m", "champion", world.registry.add_version("m"))
    world.run()
    world.registry.set_alias("m", "challenger", world.registry.add_version("m"))
    for _ in range(4):
        status = world.run()
    return status


def test_promotion_reason_and_status_numbers_carry_the_cost() -> None:
    costly = Observations(
        stable=replace(GOOD.stable, cpu_seconds=10.0),  # 5,000 requests: 2 s per 1k
        canary=replace(GOOD.canary, cpu_seconds=11.8),  # 2.36 s per 1k: 18% more
    )
    status = promote_a_canary(costly, {"cpuCoreHour": 3.6})
    numbers = status["lastAnalysis"]["numbers"]
    assert numbers["cost.stable_cpu_seconds_per_1k"] == 2.0
    assert numbers["cost.canary_cpu_seconds_per_1k"] == 2.36
    assert numbers["cost.canary_relative"] == 0.18
    assert numbers["cost.canary_per_1k"] == 0.00236
    promoted = [h for h in status["history"] if h["outcome"] == "Promoted"]
    assert promoted, status
    assert "the canary costs 18% more per 1k inferences" in promoted[-1]["reason"]


def test_without_spec_cost_the_chart_price_is_used() -> None:
    world = World()
    world.deps.default_cpu_core_hour = 7.2
    world.windows.observations = Observations(
        stable=replace(GOOD.stable, cpu_seconds=10.0), canary=replace(GOOD.canary, cpu_seconds=10.0)
    )
    world.platform.ready = True
    world.canary_started()
    numbers = world.run()["lastAnalysis"]["numbers"]
    assert numbers["cost.stable_per_1k"] == 0.004  # 2 CPU s per 1k at 7.2 a core-hour
