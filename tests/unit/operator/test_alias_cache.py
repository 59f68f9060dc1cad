"""registry_port.AliasCache: registry reads grow with models, not with ModelDeployments.

The ticks' registry reads (``registry_port.read_state``) go through a ``CachedRegistry``
whose entries the real ``RegistryWatcher`` feeds (``handlers.registry_events``). The
registry is the in-memory fake, which records every call, so the tests count what N
followers of one model cost per poll interval.
"""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

from modeldeploy.operator import registry_port
from modeldeploy.operator.api.types import ModelDeploymentSpec, parse_spec
from modeldeploy.operator.handlers.registry_events import RegistryEvents
from modeldeploy.operator.registry_port import AliasCache, Entry
from modeldeploy.registry.base import ModelVersionInfo, RegistryUnavailable
from tests.support.in_memory_registry import InMemoryRegistry

URI = "mlflow"
INTERVAL = 0.2


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def spec(model: str = "m") -> ModelDeploymentSpec:
    return parse_spec({"model": {"name": model}})


def registry() -> InMemoryRegistry:
    reg = InMemoryRegistry()
    reg.set_alias("m", "champion", reg.add_version("m"))
    reg.calls.clear()
    return reg


async def until(check: Any, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.01)


async def followers_cost(n: int, intervals: int) -> tuple[list[str], float, int]:
    """Registry calls, seconds taken and the ticks' own reads, for ``n`` ModelDeployments
    ticking ten times per poll interval for ``intervals`` intervals (after the first poll)."""
    reg = registry()
    # An entry is stale after 50 poll intervals (10 s): far beyond the watcher's period, so
    # only a watcher that stopped polling (not a busy CI machine delaying one poll by a few
    # hundred milliseconds) would make a tick read through.
    cache = AliasCache(max_age=50 * INTERVAL)
    events = RegistryEvents(
        asyncio.get_running_loop(), lambda uri: reg, lambda ns, name: None, INTERVAL, cache
    )
    client = cache.client(URI, reg)
    for i in range(n):
        events.seen(URI, "m", "ml", f"md{i}")
    await until(lambda: cache.fresh(URI, "m") is not None)
    reg.calls.clear()
    started = time.monotonic()
    for _ in range(intervals * 10):
        for _ in range(n):
            state = await asyncio.to_thread(registry_port.read_state, client, spec())
            assert state.stable is not None and state.stable.version == "1"
        await asyncio.sleep(INTERVAL / 10)
    elapsed = time.monotonic() - started
    await events.close()
    return list(reg.calls), elapsed, cache.read_through


def test_n_followers_of_one_model_cost_the_registry_one_poll_per_interval() -> None:
    async def scenario() -> list[tuple[list[str], float, int]]:
        return [await followers_cost(n, 5) for n in (1, 40)]

    for calls, elapsed, read_through in asyncio.run(scenario()):
        assert read_through == 0  # no tick read the registry itself
        polls = calls.count("get_model")  # each poll reads the aliases once
        assert 1 <= polls <= elapsed / INTERVAL + 2
        # the rest of a poll: one page of versions (all of them fit in it here)
        assert len(calls) == 2 * polls, calls
    # Without the cache 40 followers would cost 40 x 10 ticks x 2 calls per interval.


def test_a_moved_alias_reaches_every_follower_within_one_poll() -> None:
    async def scenario() -> None:
        reg = registry()
        cache = AliasCache(max_age=3600)  # only the watcher can refresh it here
        woken: set[tuple[str, str]] = set()
        events = RegistryEvents(
            asyncio.get_running_loop(), lambda uri: reg, lambda *key: woken.add(key), 0.1, cache
        )
        client = cache.client(URI, reg)
        names = [f"md{i}" for i in range(20)]
        for name in names:
            events.seen(URI, "m", "ml", name)
        await until(lambda: cache.fresh(URI, "m") is not None)
        await asyncio.sleep(0.15)
        woken.clear()
        reg.set_alias("m", "challenger", reg.add_version("m"))
        await until(lambda: len(woken) == len(names))  # one poll wakes every follower
        reads_before = cache.read_through
        for _ in names:  # and each of them, woken, already reads the new candidate
            state = registry_port.read_state(client, spec())
            assert state.candidate is not None and state.candidate.version == "2"
        assert cache.read_through == reads_before
        await events.close()

    asyncio.run(scenario())


def test_a_stale_entry_is_read_from_the_registry_so_a_dead_watcher_freezes_nothing() -> None:
    reg, clock = registry(), Clock()
    cache = AliasCache(max_age=30, clock=clock)
    client = cache.client(URI, reg)
    assert registry_port.read_state(client, spec()).candidate is None
    reg.set_alias("m", "challenger", reg.add_version("m"))  # nobody feeds the cache
    clock.now += 29
    assert registry_port.read_state(client, spec()).candidate is None  # still fresh
    clock.now += 2
    state = registry_port.read_state(client, spec())
    assert state.candidate is not None and state.candidate.version == "2"
    assert cache.read_through == 2


def test_a_stale_entry_with_the_registry_down_reports_it_unavailable() -> None:
    reg, clock = registry(), Clock()
    cache = AliasCache(max_age=30, clock=clock)
    client = cache.client(URI, reg)
    assert registry_port.read_state(client, spec()).available
    reg.online = False
    assert registry_port.read_state(client, spec()).available  # the entry is fresh
    clock.now += 31
    assert not registry_port.read_state(client, spec()).available  # never served stale


def test_a_decision_is_planned_on_fresh_reads_and_drops_the_entry() -> None:
    reg, clock = registry(), Clock()
    reg.set_alias("m", "challenger", reg.add_version("m"))
    cache = AliasCache(max_age=30, clock=clock)
    client = cache.client(URI, reg)
    # A stale picture in the cache: it says version 1 is the candidate.
    stale = ModelVersionInfo("m", "1")
    cache.put(URI, "m", Entry(True, {"champion": "1", "challenger": "1"}, {"1": stale}, 1000))
    reg.calls.clear()
    registry_port.promote(client, spec(), "2", "passed")
    assert reg.calls[:2] == ["get_version", "get_model"]  # read from the registry itself
    assert cache.fresh(URI, "m") is None
    state = registry_port.read_state(client, spec())
    assert state.stable is not None and state.stable.version == "2"


def test_every_write_through_the_cached_client_drops_the_entry() -> None:
    reg = registry()
    cache = AliasCache(max_age=30)
    client = cache.client(URI, reg)
    client.get_model("m")
    assert cache.fresh(URI, "m") is not None
    client.set_alias("m", "challenger", reg.add_version("m"))
    assert cache.fresh(URI, "m") is None
    client.get_model("m")
    client.set_version_tag("m", "2", "k", "v")
    assert cache.fresh(URI, "m") is None


def test_the_cache_is_bounded_least_recently_used_first() -> None:
    cache = AliasCache(max_age=30, max_entries=3)
    for model in "abcd":
        cache.put(URI, model, Entry(True, at=cache.clock()))
    assert len(cache) == 3
    assert cache.fresh(URI, "a") is None
    assert cache.fresh(URI, "b") is not None  # now the most recently used
    cache.put(URI, "e", Entry(True, at=cache.clock()))
    assert cache.fresh(URI, "c") is None and cache.fresh(URI, "b") is not None


def test_concurrent_misses_read_the_registry_once() -> None:
    cache = AliasCache(max_age=30)
    reads, started = [], threading.Barrier(8)

    def read() -> Entry:
        reads.append(1)
        time.sleep(0.05)
        return Entry(True, {"champion": "1"}, at=cache.clock())

    def tick() -> None:
        started.wait()
        cache.load(URI, "m", read)

    threads = [threading.Thread(target=tick) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(reads) == 1


def test_a_failed_read_through_is_not_cached() -> None:
    reg = registry()
    cache = AliasCache(max_age=30)
    client = cache.client(URI, reg)
    reg.online = False
    try:
        client.get_model("m")
    except RegistryUnavailable:
        pass
    else:
        raise AssertionError("an unreachable registry must raise")
    assert len(cache) == 0
    reg.online = True
    assert client.get_model("m").aliases == {"champion": "1"}


def test_a_model_the_registry_listing_shows_unchanged_stays_fresh_without_a_read() -> None:
    from modeldeploy.registry.watcher import ModelState, PollResult, WatcherStatus

    async def scenario() -> None:
        clock = Clock()
        cache = AliasCache(max_age=30, clock=clock)
        events = RegistryEvents(
            asyncio.get_running_loop(), lambda uri: registry(), lambda *key: None, 10, cache
        )
        info = ModelVersionInfo("m", "1", source="models:/m-1")
        cache.put(URI, "m", Entry(True, {"champion": "1"}, {"1": info}, clock.now))
        clock.now += 25
        state = ModelState(True, {"champion": "1"}, {"1": {}}, 1)
        quiet = PollResult((), {"m": state}, WatcherStatus(), unchanged=frozenset({"m"}))
        events._polled(URI, quiet)
        clock.now += 25  # 50 s after the entry was read, 25 s after the listing
        entry = cache.fresh(URI, "m")
        assert entry is not None and entry.versions["1"].source == "models:/m-1"

    asyncio.run(scenario())
