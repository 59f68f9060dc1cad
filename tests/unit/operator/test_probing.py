"""When the operator asks the prober to probe a rollout, and what it tells it."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

from modeldeploy.operator import probing
from modeldeploy.operator.api.status import CanaryState, Status, VersionRef
from modeldeploy.operator.api.types import parse_spec
from modeldeploy.operator.executor import Executor
from modeldeploy.operator.platforms.base import Target
from modeldeploy.registry.golden import TAG_GOLDEN_SET, TAG_GOLDEN_SHA256
from modeldeploy.serving.contract.joiner import arms_entry
from modeldeploy.serving.prober.arms import targets_in
from tests.support.in_memory_registry import InMemoryRegistry

START = "2026-12-01T10:00:00+00:00"
START_EPOCH = datetime(2026, 12, 1, 10, tzinfo=UTC).timestamp()
GOLDEN_TAGS = {TAG_GOLDEN_SET: "file:///g", TAG_GOLDEN_SHA256: "ab"}


def target(**rollout: object) -> Target:
    raw = {"model": {"name": "m"}, "rollout": rollout}
    return Target("demo", "ml", parse_spec(raw), registry_uri="http://u:p@mlflow:5000")


def registry(stable_tags: dict[str, str]) -> InMemoryRegistry:
    reg = InMemoryRegistry()
    reg.add_version("m", stable_tags)  # version 1: stable
    reg.add_version("m")  # version 2: the canary
    return reg


def canary(**changes: object) -> CanaryState:
    return replace(CanaryState("2", weight=10, start_time=START), **changes)  # type: ignore[arg-type]


def test_an_undecided_canary_with_a_golden_set_is_probed_by_default() -> None:
    plan = probing.plan(
        target(), VersionRef("1"), canary(), registry(GOLDEN_TAGS), probing._Memory()
    )
    assert plan.note == ""
    assert plan.block == {
        "since": START_EPOCH,  # the canary's start: the prober's durable anchor
        "rate": 1.0,
        "registry": "http://mlflow:5000",  # never the credentials
    }
    # The joiner-format entry carries it, and the prober reads it back.
    entry = arms_entry("demo", "m", {"stable": ("http://s", "1"), "canary": ("http://c", "2")},
                       plan.block)  # fmt: skip
    found = targets_in(json.loads(entry))["demo"]
    assert (found.since, found.rate, found.stable_version) == (START_EPOCH, 1.0, "1")


def test_no_probe_when_disabled_decided_or_without_a_start() -> None:
    memory, reg = probing._Memory(), registry(GOLDEN_TAGS)
    stable = VersionRef("1")
    off = target(prober={"enabled": False})
    assert probing.plan(off, stable, canary(), reg, memory).block is None
    decided = canary(outcome="RolledBack")
    assert probing.plan(target(), stable, decided, reg, memory).block is None
    assert probing.plan(target(), stable, None, reg, memory).block is None
    assert probing.plan(target(), stable, canary(start_time=""), reg, memory).block is None


def test_a_stable_version_without_a_golden_set_is_said_once_and_not_probed() -> None:
    memory, reg = probing._Memory(), registry({})
    first = probing.plan(target(), VersionRef("1"), canary(), reg, memory)
    assert first == probing.ProbePlan(None, "no golden set for version 1: prober idle")
    assert probing.plan(target(), VersionRef("1"), canary(), reg, memory).note == ""


def test_presence_is_remembered_a_missing_set_is_asked_again_later() -> None:
    now = [0.0]
    memory = probing._Memory(clock=lambda: now[0])
    reg = registry({})
    assert not memory.has_golden(reg, "u", "m", "1")
    reg.set_version_tag("m", "1", TAG_GOLDEN_SET, "file:///g")
    reg.set_version_tag("m", "1", TAG_GOLDEN_SHA256, "ab")
    assert not memory.has_golden(reg, "u", "m", "1")  # remembered for a while
    now[0] = probing.RECHECK_S + 1
    assert memory.has_golden(reg, "u", "m", "1")
    calls = len(reg.calls)
    assert memory.has_golden(reg, "u", "m", "1") and len(reg.calls) == calls  # for good


class Publisher:
    def __init__(self) -> None:
        self.probes: list[object] = []

    def reassert_traffic(self, target: object, weight: int) -> None:
        return None

    def publish_arms(self, target: object, stable: object, canary: object, probe: object) -> None:
        self.probes.append(probe)


def test_the_executor_passes_the_probe_block_and_emits_the_idle_note_once(
    tmp_path: Path,
) -> None:
    events: list[tuple[str, str, str]] = []
    platform = Publisher()
    reg = registry({})
    executor = Executor(platform, reg, lambda *e: events.append(e))  # type: ignore[arg-type]
    after = Status("Progressing", stable=VersionRef("1"), canary=canary())
    probing.MEMORY.noted.clear()
    executor.run(target(), after, after, [])
    executor.run(target(), after, after, [])
    assert platform.probes == [None, None]
    assert events == [("Normal", "ProberIdle", "no golden set for version 1: prober idle")]


def test_the_kserve_arms_entry_carries_the_probe_block_to_the_joiners_prober() -> None:
    from modeldeploy.operator.platforms.kserve_arms import ArmsConfigMap
    from tests.unit.operator.test_kserve_joiner_arms import CoreApi

    api = CoreApi()
    cm = ArmsConfigMap(api, "sys/arms")
    urls = {"stable": "http://s.ml", "canary": "http://c.ml"}
    block = {"since": START_EPOCH, "rate": 1.0, "registry": "http://mlflow:5000"}
    cm.publish(target(), VersionRef("1"), VersionRef("2"), urls, block)
    cm.publish(target(), VersionRef("1"), VersionRef("2"), urls, block)  # unchanged: no write
    assert len(api.patches) == 1
    value = api.patches[0][2]["data"]["ml.demo.json"]
    found = targets_in(json.loads(value))["demo"]
    assert (found.stable_url, found.canary_url, found.since) == ("http://s.ml", "http://c.ml",
                                                                   START_EPOCH)  # fmt: skip
    cm.publish(target(), VersionRef("1"), VersionRef("2"), urls, None)  # probing turned off
    assert targets_in(json.loads(api.patches[-1][2]["data"]["ml.demo.json"])) == {}
