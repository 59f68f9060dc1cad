"""Tick lag is visible: a histogram of how late ticks start, a counter and a log line for
ticks that start more than twice their interval after the previous one.

The daemon test runs the real ``handlers.lifecycle.rollout`` with a tick made slow on
purpose (a fake at the I/O boundary), so its successors start late.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from types import SimpleNamespace
from typing import Any

import kopf
import pytest
from prometheus_client import REGISTRY

from modeldeploy.operator import reconcile, telemetry
from modeldeploy.operator.handlers import lifecycle
from modeldeploy.operator.handlers.wakeup import Wakers
from modeldeploy.operator.platforms.nop import NopPlatform
from modeldeploy.operator.settings import RolloutSettings
from tests.support.in_memory_registry import InMemoryRegistry
from tests.support.windows import FixedWindows


def lag_count() -> float:
    return REGISTRY.get_sample_value("modeldeploy_operator_tick_lag_seconds_count") or 0.0


def late_total() -> float:
    return REGISTRY.get_sample_value("modeldeploy_operator_late_ticks_total") or 0.0


@pytest.fixture(autouse=True)
def fresh_late_log(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(telemetry, "LATE", telemetry._LateTicks())


def test_the_lag_is_the_delay_between_due_and_start() -> None:
    clock, before = telemetry.TickClock(), lag_count()
    assert clock.started(due=100.0, interval=0.0, now=102.5) == 2.5
    assert clock.started(due=110.0, interval=10.0, now=109.0) == 0.0  # never negative
    assert lag_count() == before + 2


def test_a_tick_more_than_twice_its_interval_after_the_last_is_late(
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock, before = telemetry.TickClock(), late_total()
    with caplog.at_level(logging.WARNING, logger="modeldeploy.operator.telemetry"):
        clock.started(due=0.0, interval=0.0, now=0.0)
        clock.started(due=10.0, interval=10.0, now=19.9)  # 19.9 s apart: stretched, not late
        assert late_total() == before and caplog.records == []
        clock.started(due=29.9, interval=10.0, now=45.0)  # 25.1 s apart
    assert late_total() == before + 1
    (record,) = caplog.records
    assert "25.1 s after the previous one, planned 10.0 s" in record.getMessage()


def test_late_ticks_are_logged_at_most_once_a_minute_and_counted_every_time(
    caplog: pytest.LogCaptureFixture,
) -> None:
    before = late_total()
    with caplog.at_level(logging.WARNING, logger="modeldeploy.operator.telemetry"):
        for i in range(5):  # five ModelDeployments late within one second
            clock = telemetry.TickClock(last_start=0.0)
            clock.started(due=10.0, interval=10.0, now=30.0 + i * 0.1)
        assert len(caplog.records) == 1
        telemetry.TickClock(last_start=60.0).started(due=70.0, interval=10.0, now=91.0)
    assert late_total() == before + 6
    assert len(caplog.records) == 2
    assert caplog.records[1].getMessage().startswith("5 tick(s) started late")


class Kube:
    """One ModelDeployment behind get and status merge-patch."""

    def __init__(self) -> None:
        self.obj: dict[str, Any] = {
            "metadata": {"name": "s", "namespace": "ml", "generation": 1, "resourceVersion": "1"},
            "spec": {"model": {"name": "m"}},
        }
        self.lock = threading.Lock()

    def get_namespaced_custom_object(self, *args: Any) -> dict[str, Any]:
        with self.lock:
            return {**self.obj, "status": dict(self.obj.get("status") or {})}

    def patch_namespaced_custom_object_status(self, *args: Any) -> dict[str, Any]:
        with self.lock:
            self.obj.setdefault("status", {}).update(args[-1]["status"])
            return self.obj


class Stopped:
    def __init__(self) -> None:
        self.flag = asyncio.Event()

    def __bool__(self) -> bool:
        return self.flag.is_set()

    def wait(self) -> Any:
        return self.flag.wait()


def test_a_daemon_whose_ticks_run_long_reports_them_late(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    starts: list[float] = []
    real = lifecycle.tick_once

    def slow(*args: Any) -> Any:
        starts.append(time.monotonic())
        time.sleep(0.1)  # five intervals: the next tick starts far more than 2x late
        return real(*args)

    async def scenario() -> None:
        registry = InMemoryRegistry()
        registry.set_alias("m", "champion", registry.add_version("m"))
        deps = reconcile.Deps(
            platform=NopPlatform(),
            registry_for=lambda spec: registry,
            windows=FixedWindows(None),
            emit=lambda *event: None,
        )
        memo = SimpleNamespace(
            settings=SimpleNamespace(rollout=RolloutSettings(tick_seconds=0.02)),
            kube=Kube(),
            deps=deps,
            wakers=Wakers(asyncio.get_running_loop()),
            events=None,
        )
        stopped = Stopped()
        meta = {"namespace": "ml", "name": "s"}
        task = asyncio.ensure_future(
            lifecycle.rollout(meta=meta, memo=memo, logger=logging.getLogger("t"), stopped=stopped)
        )
        while len(starts) < 3:
            await asyncio.sleep(0.01)
        stopped.flag.set()
        await asyncio.wait_for(task, 2)

    monkeypatch.setattr(kopf, "event", lambda body, **event: None)
    monkeypatch.setattr(lifecycle, "tick_once", slow)
    lags, late = lag_count(), late_total()
    with caplog.at_level(logging.WARNING, logger="modeldeploy.operator.telemetry"):
        asyncio.run(scenario())
    assert lag_count() - lags >= 3  # every tick's start is observed
    assert late_total() - late >= 2  # the second and third started > 0.04 s after the last
    assert "not keeping up" in caplog.text
