"""handlers.registry_events.RegistryEvents: a registry change pokes the ModelDeployments.

Fakes at the I/O boundaries: the in-memory registry client, and a CustomObjectsApi that
records its patches. The real ``RegistryWatcher`` polls in between.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from modeldeploy.operator.api.schema import GROUP, PLURAL, VERSION
from modeldeploy.operator.handlers.registry_events import CHANGED, RegistryEvents
from tests.support.in_memory_registry import InMemoryRegistry


class Api:
    """Records ``patch_namespaced_custom_object`` calls; ``refuse`` makes them fail."""

    def __init__(self) -> None:
        self.patches: list[tuple[str, str, dict[str, Any]]] = []
        self.refuse: set[str] = set()

    def patch_namespaced_custom_object(
        self, group: str, version: str, namespace: str, plural: str, name: str, body: Any
    ) -> dict[str, Any]:
        assert (group, version, plural) == (GROUP, VERSION, PLURAL)
        if name in self.refuse:
            raise RuntimeError("403 Forbidden")
        self.patches.append((namespace, name, body))
        return {}

    def poked(self) -> set[tuple[str, str]]:
        return {(ns, name) for ns, name, _ in self.patches}


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


async def settled(events: RegistryEvents, api: Api) -> None:
    """Let the first polls (which see the existing versions) pass, then forget their pokes."""
    await until(lambda: all(w.status.last_success for w in events.watchers.values()))
    await asyncio.sleep(0.1)
    api.patches.clear()


def test_a_registry_change_annotates_every_deployment_of_that_model_only() -> None:
    async def scenario() -> None:
        reg, api = registry(), Api()
        events = RegistryEvents(asyncio.get_running_loop(), lambda uri: reg, api, 0.05)
        events.seen("mlflow", "m", "ml", "a")
        events.seen("mlflow", "m", "team", "b")
        events.seen("mlflow", "other", "ml", "c")
        await settled(events, api)
        reg.set_alias("m", "challenger", reg.add_version("m"))
        await until(lambda: api.poked() == {("ml", "a"), ("team", "b")})
        await asyncio.sleep(0.2)
        assert ("ml", "c") not in api.poked()
        body = api.patches[0][2]
        assert list(body["metadata"]["annotations"]) == [CHANGED]
        assert body["metadata"]["annotations"][CHANGED].endswith("Z")
        await events.close()

    asyncio.run(scenario())


def test_a_webhook_nudge_polls_now_instead_of_at_the_next_interval() -> None:
    async def scenario() -> None:
        reg, api = registry(), Api()
        events = RegistryEvents(asyncio.get_running_loop(), lambda uri: reg, api, 3600)
        events.seen("mlflow", "m", "ml", "a")
        await settled(events, api)
        reg.set_alias("m", "challenger", reg.add_version("m"))
        await asyncio.sleep(0.2)
        assert api.patches == []  # the next full poll is an hour away
        events.nudge("m")
        await until(lambda: api.poked() == {("ml", "a")})
        await events.close()

    asyncio.run(scenario())


def test_a_failed_poke_does_not_stop_the_others_or_the_watcher() -> None:
    async def scenario() -> None:
        reg, api = registry(), Api()
        events = RegistryEvents(asyncio.get_running_loop(), lambda uri: reg, api, 0.05)
        events.seen("mlflow", "m", "ml", "a")
        events.seen("mlflow", "m", "ml", "b")
        await settled(events, api)
        api.refuse.add("a")
        reg.set_alias("m", "challenger", reg.add_version("m"))
        await until(lambda: ("ml", "b") in api.poked())
        api.refuse.clear()
        reg.delete_alias("m", "challenger")
        await until(lambda: ("ml", "a") in api.poked())
        await events.close()

    asyncio.run(scenario())
