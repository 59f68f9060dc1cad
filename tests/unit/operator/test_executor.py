"""The executor carries actions out on the platform in order; failures say if retryable."""

from __future__ import annotations

import pytest

from modeldeploy.operator.api.status import CanaryState, Status, VersionRef
from modeldeploy.operator.api.types import parse_spec
from modeldeploy.operator.executor import ExecutionFailed, Executor
from modeldeploy.operator.platforms.base import PlatformError, Target
from modeldeploy.operator.platforms.nop import NopPlatform
from modeldeploy.operator.reconcile import diff
from modeldeploy.operator.rollout import actions as a

T = Target("s", "ml", parse_spec({"model": {"name": "m"}}))
V1, V2 = VersionRef("1"), VersionRef("2")
BEFORE = Status(phase="Progressing", stable=V1, canary=CanaryState("2", weight=10))


def test_actions_reach_the_platform_in_order() -> None:
    platform, events = NopPlatform(), []
    ex = Executor(platform, registry=None, emit=lambda *e: events.append(e))
    ex.run(T, BEFORE, BEFORE, [a.SetCanary(V2, 10), a.SetTraffic(50), a.EmitEvent("Advanced", "x")])
    assert platform.calls == [("set_canary", "2@10"), ("set_traffic", "50")]
    assert events == [("Normal", "Advanced", "x")]
    assert platform.read_traffic(T) == 50


def test_remove_canary_goes_back_to_stable_only() -> None:
    platform = NopPlatform()
    Executor(platform, None, lambda *e: None).run(
        T, BEFORE, Status(phase="RolledBack", stable=V1), [a.SetTraffic(0), a.RemoveCanary()]
    )
    assert platform.read_traffic(T) is None and platform.stable["ml/s"] == V1


class Refusing(NopPlatform):
    def ensure(self, target, stable):  # type: ignore[no-untyped-def]
        raise PlatformError("forbidden", transient=False)


def test_a_permanent_platform_failure_is_not_retried() -> None:
    with pytest.raises(ExecutionFailed) as info:
        Executor(Refusing(), None, lambda *e: None).run(T, BEFORE, BEFORE, [a.EnsureStable(V1)])
    assert not info.value.transient and "EnsureStable" in str(info.value)


def test_status_diff_skips_unchanged_keys() -> None:
    assert diff({"phase": "Stable", "x": 1}, {"phase": "Stable", "x": 2}) == {"x": 2}
    assert diff({"phase": "Stable"}, {"phase": "Stable"}) == {}


class Drifting(NopPlatform):
    """Nop whose router weight someone moved by hand to ``moved_to``."""

    moved_to: int | None = None

    def reassert_traffic(self, target, weight):  # type: ignore[no-untyped-def]
        found = self.moved_to
        if found is None or found == weight:
            return None
        self.calls.append(("reassert", f"{found}->{weight}"))
        self.moved_to = weight
        return found


def _drift_count(target: Target) -> float:
    from modeldeploy.operator import telemetry

    return telemetry.TRAFFIC_DRIFT.labels(target.namespace, target.name)._value.get()


def test_a_drifted_weight_is_set_back_counted_and_reported() -> None:
    target = Target("drift", "ml", T.spec)
    platform, events = Drifting(), []
    platform.moved_to = 70
    counted = _drift_count(target)
    Executor(platform, None, lambda *e: events.append(e)).run(target, BEFORE, BEFORE, [])
    assert platform.calls == [("reassert", "70->10")]
    assert events == [("Warning", "TrafficDrift", "router weight was 70%, set back to 10%")]
    assert _drift_count(target) == counted + 1
    Executor(platform, None, lambda *e: events.append(e)).run(target, BEFORE, BEFORE, [])
    assert len(events) == 1 and _drift_count(target) == counted + 1  # nothing more to correct


def test_no_reassert_without_a_canary_or_with_a_failed_spec() -> None:
    platform, events = Drifting(), []
    platform.moved_to = 70
    ex = Executor(platform, None, lambda *e: events.append(e))
    ex.run(T, BEFORE, Status(phase="Stable", stable=V1), [])
    ex.run(T, BEFORE, Status(phase="Failed", stable=V1, canary=CanaryState("2", weight=10)), [])
    assert platform.calls == [] and events == []


class BrokenRouter(NopPlatform):
    def reassert_traffic(self, target, weight):  # type: ignore[no-untyped-def]
        raise PlatformError("router unreachable")


def test_a_failed_reassert_fails_the_tick_for_a_retry() -> None:
    with pytest.raises(ExecutionFailed) as info:
        Executor(BrokenRouter(), None, lambda *e: None).run(T, BEFORE, BEFORE, [])
    assert info.value.transient and "ReassertTraffic" in str(info.value)
