"""reconcile.tick holds the analysis while the platform says the canary does not serve yet."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from typing import Any

from modeldeploy.operator.analysis.observations import (
    ArmObservations,
    LatencyHistogram,
    Observations,
)
from modeldeploy.operator.api.conditions import NOT_READY
from modeldeploy.operator.platforms.nop import NopPlatform
from modeldeploy.operator.reconcile import Deps, tick
from tests.support.in_memory_registry import InMemoryRegistry
from tests.support.windows import FixedWindows

T0 = datetime(2026, 3, 1, tzinfo=UTC)


def arm(correct: int, total: int) -> ArmObservations:
    rng = random.Random(total)
    samples = [rng.gauss(0.02, 0.002) for _ in range(total)]
    return ArmObservations(
        labelled_correct=correct,
        labelled_total=total,
        latency=LatencyHistogram.from_samples(samples),
        requests={"ok": total},
    )


GOOD = Observations(stable=arm(4250, 5000), canary=arm(4300, 5000))


class Platform(NopPlatform):
    """Nop, with a readiness the test sets."""

    ready: bool = False

    def is_ready(self, target: Any) -> bool:
        return self.ready


class World:
    def __init__(
        self, min_labels: int = 100, on_inconclusive: str = "hold", **rollout: Any
    ) -> None:
        self.registry = InMemoryRegistry()
        self.platform = Platform()
        self.windows = FixedWindows(GOOD)
        self.events: list[tuple[str, str, str]] = []
        self.deps = Deps(
            platform=self.platform,
            registry_for=lambda spec: self.registry,
            windows=self.windows,
            emit=lambda kind, reason, msg: self.events.append((kind, reason, msg)),
        )
        analysis = {
            "minLabels": min_labels,
            "accuracyMargin": 0.02,
            "onInconclusive": on_inconclusive,
        }
        policy = {"steps": [50, 100], "intervalSeconds": 5, "analysis": analysis, **rollout}
        self.body: dict[str, Any] = {
            "metadata": {"name": "s", "namespace": "ml", "generation": 1, "uid": "u"},
            "spec": {"model": {"name": "m"}, "rollout": policy},
        }
        self.now = T0

    @property
    def observed(self) -> int:
        return self.windows.reads

    def run(self, seconds: float = 10) -> dict[str, Any]:
        self.now += timedelta(seconds=seconds)
        result = tick(self.body, self.now, self.deps)
        if result.patch:
            self.body["status"] = {**(self.body.get("status") or {}), **result.patch}
        return self.body["status"]

    def canary_started(self) -> dict[str, Any]:
        self.registry.set_alias("m", "champion", self.registry.add_version("m"))
        assert self.run()["phase"] == "Stable"
        self.registry.set_alias("m", "challenger", self.registry.add_version("m"))
        status = self.run()
        assert status["phase"] == "Progressing" and status["canary"]["weight"] == 50
        return status


def condition(status: dict[str, Any], kind: str) -> dict[str, Any]:
    return next(c for c in status["conditions"] if c["type"] == kind)


def test_analysis_is_pending_while_the_canary_is_not_ready() -> None:
    world = World()
    world.canary_started()
    status = world.run()
    assert world.observed == 0  # no metrics read for a revision that does not serve
    assert status["lastAnalysis"]["outcome"] == "pending"
    assert status["lastAnalysis"]["decision"] == "continue"
    assert status["lastAnalysis"]["reason"] == NOT_READY
    assert status["phase"] == "Progressing" and status["canary"]["weight"] == 50
    progressing = condition(status, "Progressing")
    assert progressing["status"] == "True" and progressing["reason"] == "CanaryNotReady"
    assert NOT_READY in progressing["message"]


def test_analysis_runs_once_the_platform_reports_the_canary_ready() -> None:
    world = World()
    world.canary_started()
    world.run()
    world.platform.ready = True
    status = world.run()
    assert world.observed == 1
    assert status["canary"]["weight"] == 100 and status["lastAnalysis"]["decision"] == "advance"
    assert condition(status, "Progressing")["reason"] == "Progressing"


def test_a_canary_never_ready_by_the_deadline_is_rolled_back() -> None:
    world = World(stepDeadlineSeconds=60, on_inconclusive="rollback")
    world.canary_started()
    for _ in range(8):
        status = world.run(seconds=10)
    assert world.observed == 0
    assert status["phase"] == "RolledBack"
    assert status["history"][-1]["outcome"] == "RolledBack"
    assert NOT_READY in status["history"][-1]["reason"]
    assert ("Warning", "RollingBack") in {(k, r) for k, r, _ in world.events}


def test_a_failing_readiness_read_counts_as_not_ready() -> None:
    world = World()
    world.canary_started()

    def broken(target: Any) -> bool:
        raise RuntimeError("API down")

    world.platform.is_ready = broken  # type: ignore[method-assign]
    assert world.run()["lastAnalysis"]["reason"] == NOT_READY
    assert world.observed == 0


def test_an_invalid_spec_reports_registry_and_metrics_as_not_contacted() -> None:
    world = World(steps=[50, 40])  # steps must increase: invalid
    status = world.run()
    assert status["phase"] == "Failed"
    for kind in ("RegistryAvailable", "MetricsAvailable"):
        cond = condition(status, kind)
        assert cond["status"] == "Unknown", kind
        assert cond["reason"] == "NotContacted"
        assert cond["message"] == "not contacted: the spec is invalid"
    assert world.observed == 0


def test_the_expected_decision_time_reaches_the_status() -> None:
    need = 100_000  # far more labels than the step's deadline allows at this rate
    world = World(min_labels=need, stepDeadlineSeconds=60)
    world.canary_started()
    world.platform.ready = True
    status = world.run(seconds=10)  # the window: 10 s into the step
    last = status["lastAnalysis"]
    assert last["decision"] == "continue"
    have = GOOD.canary.labelled_total
    assert last["expectedDecisionSeconds"] == round((need - have) / (have / 10))
    assert last["secondsLeft"] == 50
    underpowered = condition(status, "Underpowered")
    assert underpowered["status"] == "True" and "50 s left" in underpowered["message"]
