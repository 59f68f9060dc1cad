"""reconcile.tick with faults injected into the platform (a fake; the real processes are in
tests/integration/local/test_local_faults.py): a canary that cannot start, one that dies.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from modeldeploy.operator.api.status import ArmHealth, VersionRef
from modeldeploy.operator.executor import ExecutionFailed
from modeldeploy.operator.platforms.base import PlatformError, Target
from modeldeploy.operator.platforms.nop import NopPlatform
from modeldeploy.operator.reconcile import Deps, tick
from modeldeploy.operator.rollout.machine import MAX_START_ATTEMPTS
from modeldeploy.registry.decisions import TAG_OUTCOME, TAG_REASON
from tests.support.in_memory_registry import InMemoryRegistry
from tests.support.windows import FixedWindows
from tests.unit.operator.test_reconcile_readiness import GOOD

T0 = datetime(2026, 3, 1, tzinfo=UTC)
HASH_ERROR = (
    "canary predictor for version 2 failed to start: process exited (code 1): "
    "DigestMismatch: model.safetensors: sha256 0f3a != 9c1e"
)


class FaultyPlatform(NopPlatform):
    """Nop, where a version can refuse to start and an arm can be declared dead."""

    broken: str = ""
    dead: dict[str, ArmHealth]

    def __init__(self) -> None:
        super().__init__()
        self.dead = {}
        self.starts = 0
        self.api_down = False

    def set_canary(self, target: Target, stable: VersionRef, canary: VersionRef, w: int) -> None:
        if canary.version == self.broken:
            self.starts += 1
            raise PlatformError(HASH_ERROR, arm="canary")
        if self.api_down:
            raise PlatformError("KServe: 503 Service Unavailable")
        super().set_canary(target, stable, canary, w)

    def health(self, target: Target) -> dict[str, ArmHealth]:
        return {**super().health(target), **self.dead}


class World:
    def __init__(self) -> None:
        self.registry = InMemoryRegistry()
        self.platform = FaultyPlatform()
        self.events: list[tuple[str, str, str]] = []
        self.deps = Deps(
            platform=self.platform,
            registry_for=lambda spec: self.registry,
            windows=FixedWindows(GOOD),
            emit=lambda kind, reason, msg: self.events.append((kind, reason, msg)),
        )
        self.body: dict[str, Any] = {
            "metadata": {"name": "s", "namespace": "ml", "generation": 1, "uid": "u"},
            "spec": {"model": {"name": "m"}, "rollout": {"steps": [50, 100]}},
        }
        self.now = T0
        self.registry.set_alias("m", "champion", self.registry.add_version("m"))
        assert self.run()["phase"] == "Stable"

    def run(self, seconds: float = 2) -> dict[str, Any]:
        self.now += timedelta(seconds=seconds)
        result = tick(self.body, self.now, self.deps)
        if result.patch:  # the status alone carries state from tick to tick (as a restart)
            self.body["status"] = {**(self.body.get("status") or {}), **result.patch}
        return self.body["status"]


def condition(status: dict[str, Any], kind: str) -> dict[str, Any]:
    return next(c for c in status["conditions"] if c["type"] == kind)


def test_a_candidate_that_cannot_start_is_rejected_with_its_error_after_bounded_attempts() -> None:
    world = World()
    world.platform.broken = "2"
    world.registry.set_alias("m", "challenger", world.registry.add_version("m"))
    status = world.run()
    assert status["phase"] == "Progressing"
    assert status["canary"]["startAttempts"] == 1 and status["canary"]["startError"] == HASH_ERROR
    assert "model.safetensors" in status["message"]
    assert condition(status, "Degraded")["status"] == "True"
    assert condition(status, "Progressing")["reason"] == "CanaryStartFailed"
    for _ in range(120):  # 4 minutes of 2-second ticks: far more than the backoff
        status = world.run()
        if status["phase"] != "Progressing":
            break
    assert world.platform.starts == MAX_START_ATTEMPTS  # bounded, not every tick
    assert status["phase"] == "RollingBack"
    status = world.run()
    assert status["phase"] == "RolledBack" and "model.safetensors" in status["message"]
    tags = world.registry.get_version("m", "2").tags
    assert tags[TAG_OUTCOME] == "rejected" and "DigestMismatch" in tags[TAG_REASON]
    warnings = [r for k, r, _ in world.events if k == "Warning"]
    assert warnings.count("CanaryStartFailed") == MAX_START_ATTEMPTS - 1
    assert "RolledBack" in warnings
    for _ in range(10):  # and it stays rejected
        assert world.run()["phase"] == "RolledBack"
    assert world.platform.starts == MAX_START_ATTEMPTS


def test_a_dead_canary_gets_no_traffic_and_rolls_back_within_two_ticks() -> None:
    world = World()
    world.registry.set_alias("m", "challenger", world.registry.add_version("m"))
    assert world.run()["canary"]["weight"] == 50
    world.platform.dead = {"canary": ArmHealth(False, "canary process exited (code -9)", True)}
    status = world.run()
    assert status["phase"] == "RollingBack" and status["message"].startswith("canary process")
    assert world.platform.weight["ml/s"] == 0  # traffic left the dead arm on this tick
    status = world.run()
    assert status["phase"] == "RolledBack" and world.platform.canary["ml/s"] is None
    assert "exited (code -9)" in world.registry.get_version("m", "2").tags[TAG_REASON]


def test_an_api_error_while_starting_a_canary_is_retried_not_counted() -> None:
    world = World()
    world.platform.api_down = True
    world.registry.set_alias("m", "challenger", world.registry.add_version("m"))
    with pytest.raises(ExecutionFailed, match="503"):
        world.run()
    assert world.body["status"]["phase"] == "Stable"  # nothing recorded: the tick repeats
    world.platform.api_down = False
    status = world.run()
    assert status["phase"] == "Progressing" and status["canary"]["startAttempts"] == 0
