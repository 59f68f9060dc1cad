"""handlers.lifecycle: one daemon per object; each tick writes its status fenced by the
resourceVersion it read, and posts its Events only once that write succeeded.

Fakes at the I/O boundaries only: a CustomObjectsApi that keeps one object and answers 409
to a stale resourceVersion (as the API server does), the in-memory registry, the nop
platform. ``reconcile.tick`` runs for real.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import logging
import threading
import time
from collections.abc import AsyncIterator, Callable
from types import SimpleNamespace
from typing import Any

import kopf
import pytest
from kubernetes.client.exceptions import ApiException

from modeldeploy.operator import reconcile, telemetry
from modeldeploy.operator.handlers import lifecycle
from modeldeploy.operator.handlers.wakeup import Wakers
from modeldeploy.operator.platforms.nop import NopPlatform
from modeldeploy.operator.settings import RolloutSettings
from tests.support.in_memory_registry import InMemoryRegistry
from tests.support.windows import FixedWindows


class Kube:
    """One ModelDeployment behind get / status merge-patch, with optimistic concurrency."""

    def __init__(self) -> None:
        self.obj: dict[str, Any] | None = {
            "apiVersion": "modeldeploy.io/v1alpha1",
            "kind": "ModelDeployment",
            "metadata": {
                "name": "s",
                "namespace": "ml",
                "uid": "u",
                "generation": 1,
                "resourceVersion": "1",
            },
            "spec": {"model": {"name": "m"}, "rollout": {"steps": [50, 100]}},
        }
        self.gets = 0
        self.patches: list[dict[str, Any]] = []
        self.before_patch: Callable[[], None] = lambda: None
        self.lock = threading.Lock()

    def write(self, change: Callable[[dict[str, Any]], None]) -> None:
        """Someone else's write: the object changes and its resourceVersion moves."""
        assert self.obj is not None
        change(self.obj)
        meta = self.obj["metadata"]
        meta["resourceVersion"] = str(int(meta["resourceVersion"]) + 1)

    def get_namespaced_custom_object(self, *args: Any) -> dict[str, Any]:
        with self.lock:
            self.gets += 1
            if self.obj is None:
                raise ApiException(status=404, reason="Not Found")
            return copy.deepcopy(self.obj)

    def patch_namespaced_custom_object_status(self, *args: Any) -> dict[str, Any]:
        body = args[-1]
        self.before_patch()
        with self.lock:
            assert self.obj is not None
            if body["metadata"]["resourceVersion"] != self.obj["metadata"]["resourceVersion"]:
                raise ApiException(status=409, reason="Conflict")
            self.patches.append(body)
            status = self.obj.setdefault("status", {})
            status.update(body["status"])
            self.write(lambda obj: None)
            return copy.deepcopy(self.obj)


def world() -> tuple[Kube, Any, InMemoryRegistry]:
    registry = InMemoryRegistry()
    registry.set_alias("m", "champion", registry.add_version("m"))
    deps = reconcile.Deps(
        platform=NopPlatform(),
        registry_for=lambda spec: registry,
        windows=FixedWindows(None),
        emit=lambda *event: None,
        default_registry_uri="",
    )
    return Kube(), deps, registry


def test_a_tick_writes_its_status_with_the_resource_version_it_read() -> None:
    kube, deps, _ = world()
    outcome = lifecycle.tick_once(kube, deps, "ml", "s")
    assert outcome.result is not None and outcome.conflicts == 0
    (patch,) = kube.patches
    assert patch["metadata"] == {"resourceVersion": "1"}
    assert patch["status"]["phase"] == "Stable" == kube.obj["status"]["phase"]  # type: ignore[index]
    assert [reason for _, reason, _ in outcome.events] == ["Initialized"]


def test_a_conflict_rereads_and_reruns_so_each_event_is_posted_once() -> None:
    kube, deps, _ = world()
    first = True

    def user_annotates() -> None:
        nonlocal first
        if first:
            first = False
            kube.write(lambda obj: obj["metadata"].setdefault("annotations", {}).update(x="1"))

    kube.before_patch = user_annotates
    outcome = lifecycle.tick_once(kube, deps, "ml", "s")
    assert outcome.conflicts == 1 and kube.gets == 2
    assert len(kube.patches) == 1 and kube.patches[0]["metadata"]["resourceVersion"] == "2"
    assert [reason for _, reason, _ in outcome.events] == ["Initialized"]  # not twice


def test_a_status_that_keeps_changing_fails_the_tick_without_writing() -> None:
    kube, deps, _ = world()
    kube.before_patch = lambda: kube.write(lambda obj: None)
    with pytest.raises(lifecycle.Conflict):
        lifecycle.tick_once(kube, deps, "ml", "s")
    assert kube.patches == [] and kube.gets == lifecycle.CONFLICT_RETRIES


def test_a_deleted_object_ends_the_tick() -> None:
    kube, deps, _ = world()
    kube.obj = None
    assert lifecycle.tick_once(kube, deps, "ml", "s").body is None


class Stopped:
    """kopf's ``stopped`` flag as the daemon uses it: truthiness and ``await wait()``."""

    def __init__(self) -> None:
        self.flag = asyncio.Event()

    def __bool__(self) -> bool:
        return self.flag.is_set()

    def wait(self) -> Any:
        return self.flag.wait()


async def until(check: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.01)


@contextlib.asynccontextmanager
async def running_daemon(memo: SimpleNamespace, name: str) -> AsyncIterator[Stopped]:
    """The daemon for ml/s, stopped on the way out even when the test body failed: a daemon
    left sleeping its hour would hold ``asyncio.run`` until pytest's timeout."""
    stopped = Stopped()
    meta = {"namespace": "ml", "name": "s"}
    task = asyncio.ensure_future(
        lifecycle.rollout(meta=meta, memo=memo, logger=logging.getLogger(name), stopped=stopped)
    )
    try:
        yield stopped
        stopped.flag.set()
        await asyncio.wait_for(task, 2)
    finally:
        stopped.flag.set()
        task.cancel()


def memo_for(kube: Kube, deps: Any, **rollout: Any) -> SimpleNamespace:
    settings = SimpleNamespace(rollout=RolloutSettings(**rollout))
    wakers = Wakers(asyncio.get_running_loop())
    return SimpleNamespace(settings=settings, kube=kube, deps=deps, wakers=wakers, events=None)


def test_the_daemon_ticks_when_woken_posts_events_after_the_write_and_stops(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    posted: list[tuple[str, int]] = []

    async def scenario() -> None:
        kube, deps, registry = world()
        monkeypatch.setattr(
            kopf, "event", lambda body, **event: posted.append((event["reason"], len(kube.patches)))
        )
        memo = memo_for(kube, deps, tick_seconds=3600)
        async with running_daemon(memo, "test"):
            await until(lambda: len(kube.patches) == 1)
            registry.set_alias("m", "challenger", registry.add_version("m"))
            await asyncio.sleep(0.1)
            assert len(kube.patches) == 1  # the next regular tick is an hour away
            memo.wakers.wake("ml", "s")
            # The status is written from the tick's thread; its Events and the exported
            # conditions follow on the event loop once that write has returned.
            await until(lambda: ("RolloutStarted", 2) in posted)
            assert kube.obj["status"]["phase"] == "Progressing"  # type: ignore[index]
            # the conditions of the last written tick are exported for alerts ...
            exported = telemetry.STATES.states[("ml", "s")].conditions
            assert ("Progressing", "True", "Progressing") in {row[:3] for row in exported}
        assert ("ml", "s") not in memo.wakers.events
        assert ("ml", "s") not in telemetry.STATES.states  # ... until the daemon ends

    asyncio.run(scenario())
    # Each Event after the status write that records it.
    assert posted == [("Initialized", 1), ("RolloutStarted", 2)]


def test_a_slow_tick_is_reported_and_the_next_waits_for_it(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    running, most = 0, 0
    release = threading.Event()
    real = lifecycle.tick_once

    def slow(*args: Any) -> Any:
        nonlocal running, most
        running += 1
        most = max(most, running)
        release.wait(5)
        try:
            return real(*args)
        finally:
            running -= 1

    async def scenario() -> None:
        kube, deps, _ = world()
        monkeypatch.setattr(kopf, "event", lambda body, **event: None)
        monkeypatch.setattr(lifecycle, "tick_once", slow)
        memo = memo_for(kube, deps, tick_seconds=0.01, tick_timeout_seconds=0.05)
        async with running_daemon(memo, "test-slow"):
            await until(lambda: "still running" in caplog.text)
            await asyncio.sleep(0.2)  # many tick intervals: none may start beside the slow one
            release.set()
            await until(lambda: len(kube.patches) >= 1)

    with caplog.at_level(logging.WARNING):
        asyncio.run(scenario())
    assert most == 1
