"""handlers.registry_events.RegistryEvents: a registry change wakes the ModelDeployments.

Fakes at the I/O boundaries: the in-memory registry client, and a wake function that
records which objects it was asked to tick now. The real ``RegistryWatcher`` polls in
between. Nothing is written to the resources.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from modeldeploy.operator.handlers.registry_events import RegistryEvents
from modeldeploy.operator.handlers.wakeup import Wakers
from tests.support.in_memory_registry import InMemoryRegistry


class Woken:
    """The wake function: records (namespace, name) of each wake-up."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str]] = []

    def __call__(self, namespace: str, name: str) -> None:
        self.calls.append((namespace, name))

    def poked(self) -> set[tuple[str, str]]:
        return set(self.calls)


async def until(check: Any, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.02)


def registry() -> InMemoryRegistry:
    reg = InMemoryRegistry()
    for model in ("m", "other"):
        reg.set_alias(model, "champion", reg.add_version(model))
    return reg


async def settled(events: RegistryEvents, woken: Woken) -> None:
    """Let the first polls (which see the existing versions) pass, then forget their wakes."""
    await until(lambda: all(w.status.last_success for w in events.watchers.values()))
    await asyncio.sleep(0.1)
    woken.calls.clear()


def test_a_registry_change_wakes_every_deployment_of_that_model_only() -> None:
    async def scenario() -> None:
        reg, woken = registry(), Woken()
        events = RegistryEvents(asyncio.get_running_loop(), lambda uri: reg, woken, 0.05)
        events.seen("mlflow", "m", "ml", "a")
        events.seen("mlflow", "m", "team", "b")
        events.seen("mlflow", "other", "ml", "c")
        await settled(events, woken)
        reg.set_alias("m", "challenger", reg.add_version("m"))
        await until(lambda: woken.poked() == {("ml", "a"), ("team", "b")})
        await asyncio.sleep(0.2)
        assert ("ml", "c") not in woken.poked()
        await events.close()

    asyncio.run(scenario())


def test_a_webhook_nudge_polls_now_instead_of_at_the_next_interval() -> None:
    async def scenario() -> None:
        reg, woken = registry(), Woken()
        events = RegistryEvents(asyncio.get_running_loop(), lambda uri: reg, woken, 3600)
        events.seen("mlflow", "m", "ml", "a")
        await settled(events, woken)
        reg.set_alias("m", "challenger", reg.add_version("m"))
        await asyncio.sleep(0.2)
        assert woken.calls == []  # the next full poll is an hour away
        events.nudge("m")
        await until(lambda: woken.poked() == {("ml", "a")})
        await events.close()

    asyncio.run(scenario())


def test_a_wake_sets_the_objects_event_from_any_thread() -> None:
    async def scenario() -> None:
        wakers = Wakers(asyncio.get_running_loop())
        a, b = wakers.event("ml", "a"), wakers.event("ml", "b")
        await asyncio.to_thread(wakers.wake_threadsafe, "ml", "a")
        await asyncio.wait_for(a.wait(), 1)
        assert not b.is_set()
        wakers.forget("ml", "a")
        assert wakers.event("ml", "a") is not a  # a new daemon gets a fresh event

    asyncio.run(scenario())
