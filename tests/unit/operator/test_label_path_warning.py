"""Without a joiner on KServe, labels may never reach the arm that served them: the operator
says so when it starts (log) and at each canary start (a Warning Event and a log line)."""

from __future__ import annotations

import logging
from typing import Any

import pytest

from modeldeploy.operator.platforms.base import LabelPathReporter
from modeldeploy.operator.platforms.kserve import NO_JOINER, KServePlatform
from modeldeploy.operator.settings import KServeSettings
from tests.unit.operator.test_kserve_platform import FakeApi, target
from tests.unit.operator.test_reconcile_readiness import Platform, World

EVENTS = "http://modeldeploy-joiner.modeldeploy.svc:8081"


class Unjoined(Platform):
    problem = "labels cannot reach the arm that served them"

    def label_path_problem(self, target: Any) -> str:
        return self.problem


def world_on(platform: Platform) -> World:
    world = World()
    world.platform = world.deps.platform = platform
    return world


def warnings(world: World) -> list[str]:
    return [
        m for kind, reason, m in world.events if (kind, reason) == ("Warning", "LabelsMayNotArrive")
    ]


def test_kserve_without_a_joiner_names_the_chart_value(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="modeldeploy.operator.kserve"):
        platform = KServePlatform(FakeApi(), KServeSettings())
    assert isinstance(platform, LabelPathReporter)
    assert platform.label_path_problem(target()) == NO_JOINER
    assert "joiner.enabled=true" in NO_JOINER
    assert [r.getMessage() for r in caplog.records] == [NO_JOINER]


def test_kserve_with_a_joiner_has_nothing_to_say(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="modeldeploy.operator.kserve"):
        platform = KServePlatform(FakeApi(), KServeSettings(joiner_events_url=EVENTS))
    assert platform.label_path_problem(target()) == ""
    assert caplog.records == []


def test_each_canary_start_warns_once_and_the_steps_after_it_do_not(
    caplog: pytest.LogCaptureFixture,
) -> None:
    world = world_on(Unjoined())
    with caplog.at_level(logging.WARNING, logger="modeldeploy.operator.reconcile"):
        world.canary_started()
    assert warnings(world) == [Unjoined.problem]
    assert any(
        Unjoined.problem in r.getMessage() and "ml/s" in r.getMessage() for r in caplog.records
    )
    world.platform.ready = True
    status = world.run()
    assert status["canary"]["weight"] == 100  # the next step: no second warning
    assert warnings(world) == [Unjoined.problem]


def test_a_platform_that_cannot_say_or_fails_to_leaves_the_tick_alone() -> None:
    plain = World()  # NopPlatform: no label_path_problem at all
    plain.canary_started()
    assert warnings(plain) == []

    class Broken(Unjoined):
        def label_path_problem(self, target: Any) -> str:
            raise RuntimeError("settings unreadable")

    broken = world_on(Broken())
    broken.canary_started()  # the canary still starts
    assert warnings(broken) == []

    silent = Unjoined()
    silent.problem = ""
    quiet = world_on(silent)
    quiet.canary_started()
    assert warnings(quiet) == []
