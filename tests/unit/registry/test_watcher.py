"""Watcher rules: typed diffs, cost bounded by models not history, outages reported as a
state with back-off, and no change lost (snapshot only advances once changes are handled)."""

from __future__ import annotations

import asyncio

import pytest

from modeldeploy.registry.base import ChangeKind
from modeldeploy.registry.watcher import (
    ModelState,
    RegistryWatcher,
    Snapshot,
    WatchSettings,
    WatchState,
    backoff_delay,
    diff_model,
)
from tests.support.in_memory_registry import InMemoryRegistry


def _kinds(changes):
    return [(c.kind, c.version, c.alias or c.key) for c in changes]


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        (None, ModelState(True, {"champion": "1"}, {"1": {}}, 1),
         [(ChangeKind.VERSION_CREATED, "1", None), (ChangeKind.ALIAS_SET, "1", "champion")]),
        (ModelState(True, {"champion": "1"}, {"1": {}, "2": {}}, 2),
         ModelState(True, {"champion": "2"}, {"1": {}, "2": {}}, 2),
         [(ChangeKind.ALIAS_MOVED, "2", "champion")]),
        (ModelState(True, {"challenger": "2"}, {"2": {}}, 2),
         ModelState(True, {}, {"2": {}}, 2),
         [(ChangeKind.ALIAS_REMOVED, None, "challenger")]),
        (ModelState(True, {}, {"2": {"a": "1", "b": "x"}}, 2),
         ModelState(True, {}, {"2": {"a": "2"}}, 2),
         [(ChangeKind.TAG_SET, "2", "a"), (ChangeKind.TAG_REMOVED, "2", "b")]),
        (ModelState(True, {}, {"5": {}}, 5),
         ModelState(True, {"champion": "1"}, {"1": {"t": "v"}, "5": {}}, 5),
         [(ChangeKind.ALIAS_SET, "1", "champion")]),  # an old version entering view is not "new"
        (ModelState(True, {"champion": "1"}, {"1": {}}, 1), ModelState(False, max_version=1),
         [(ChangeKind.ALIAS_REMOVED, None, "champion")]),  # model deleted
    ],
    ids=["first-sight", "alias-moved", "alias-removed", "tag-set-and-removed",
         "old-version-aliased", "model-deleted"],
)  # fmt: skip
def test_diff_reports_typed_changes(old, new, expected) -> None:
    assert _kinds(diff_model("m", old, new)) == expected


def test_moved_alias_remembers_where_it_was() -> None:
    old = ModelState(True, {"champion": "1"}, {"1": {}, "2": {}}, 2)
    new = ModelState(True, {"champion": "2"}, {"1": {}, "2": {}}, 2)
    (change,) = diff_model("m", old, new)
    assert change.previous_version == "1" and "moved from version 1 to 2" in change.describe()


@pytest.mark.parametrize(
    ("failures", "delay"), [(0, 10.0), (1, 1.0), (2, 2.0), (3, 4.0), (10, 30.0)]
)
def test_backoff_doubles_while_unavailable_and_is_capped(failures: int, delay: float) -> None:
    assert backoff_delay(failures, interval=10.0, base=1.0, cap=30.0) == delay


def test_poll_cost_grows_with_models_not_history() -> None:
    reg = InMemoryRegistry()
    for _ in range(200):
        reg.add_version("m")
    reg.set_alias("m", "champion", "3")  # an old version outside the window
    watcher = RegistryWatcher(reg, ["m"], settings=WatchSettings(window=10))
    watcher.poll()
    reg.calls.clear()
    watcher.poll()
    assert reg.calls == ["get_model", "search_versions", "get_version"]
    assert set(watcher.snapshot.models["m"].versions) == {str(v) for v in range(191, 201)} | {"3"}


def test_a_burst_of_new_versions_is_read_page_by_page_so_none_is_missed() -> None:
    reg = InMemoryRegistry()
    reg.add_version("m")
    watcher = RegistryWatcher(reg, ["m"], settings=WatchSettings(window=5))
    watcher.poll()
    for _ in range(12):
        reg.add_version("m")
    created = [c.version for c in watcher.poll().changes if c.kind is ChangeKind.VERSION_CREATED]
    assert sorted(created, key=int) == [str(v) for v in range(2, 14)]


def test_outage_is_a_state_and_the_change_made_meanwhile_is_seen_on_recovery() -> None:
    reg = InMemoryRegistry()
    reg.add_version("m")
    reg.add_version("m")
    reg.set_alias("m", "champion", "1")
    watcher = RegistryWatcher(reg, ["m"], settings=WatchSettings(backoff_base=0.5))
    watcher.poll()
    reg.online = False
    for expected_failures in (1, 2):
        result = watcher.poll()
        assert result.changes == () and result.status.state is WatchState.UNAVAILABLE
        assert watcher.status.failures == expected_failures
    assert watcher.status.next_delay == 1.0
    reg.online = True
    reg.set_alias("m", "champion", "2")  # changed before the watcher could look again
    result = watcher.poll()
    assert watcher.status.state is WatchState.READY and watcher.status.failures == 0
    assert _kinds(result.changes) == [(ChangeKind.ALIAS_MOVED, "2", "champion")]


def test_missing_model_is_watched_until_it_appears() -> None:
    reg = InMemoryRegistry()
    watcher = RegistryWatcher(reg, ["later"])
    assert watcher.poll().changes == () and watcher.status.state is WatchState.READY
    reg.add_version("later")
    assert _kinds(watcher.poll().changes) == [(ChangeKind.VERSION_CREATED, "1", None)]


def test_snapshot_survives_serialisation_so_a_restarted_operator_loses_nothing() -> None:
    reg = InMemoryRegistry()
    reg.add_version("m", {"k": "v"})
    reg.set_alias("m", "challenger", "1")
    first = RegistryWatcher(reg, ["m"])
    first.poll()
    saved = first.snapshot.to_json()
    reg.set_alias("m", "champion", "1")  # happens while the operator is down
    second = RegistryWatcher(reg, ["m"], snapshot=Snapshot.from_json(saved))
    assert Snapshot.from_json(saved) == first.snapshot
    assert _kinds(second.poll().changes) == [(ChangeKind.ALIAS_SET, "1", "champion")]


def test_run_offers_changes_again_when_the_handler_fails_and_polls_nudged_models_now() -> None:
    reg = InMemoryRegistry()
    reg.add_version("m")
    watcher = RegistryWatcher(reg, ["m"], settings=WatchSettings(interval=3600, backoff_cap=0.05))
    received: list[list] = []

    async def scenario() -> None:
        stop = asyncio.Event()
        calls = {"n": 0}

        def on_changes(changes):
            calls["n"] += 1
            if calls["n"] == 1:
                raise RuntimeError("operator hiccup")
            received.append(changes)

        task = asyncio.create_task(watcher.run(on_changes, stop))
        try:
            for _ in range(100):
                if received:
                    break
                await asyncio.sleep(0.02)
            assert received and _kinds(received[0]) == [(ChangeKind.VERSION_CREATED, "1", None)]
            reg.set_alias("m", "challenger", "1")
            watcher.nudge("m")  # interval is an hour: only the nudge can make this poll happen
            for _ in range(100):
                if len(received) > 1:
                    break
                await asyncio.sleep(0.02)
        finally:  # stopped even when an assertion failed: its next poll is an hour away
            stop.set()
            await asyncio.wait_for(task, 2)

    asyncio.run(scenario())
    assert _kinds(received[1]) == [(ChangeKind.ALIAS_SET, "1", "challenger")]


def test_a_poll_hands_over_what_it_read_of_the_aliased_versions() -> None:
    reg = InMemoryRegistry()
    old = reg.add_version("m", {"k": "old"})
    for _ in range(4):
        reg.add_version("m")
    reg.set_alias("m", "champion", old)  # outside the one-version page below
    reg.set_alias("m", "challenger", "5")
    result = RegistryWatcher(reg, ["m"], settings=WatchSettings(window=1)).poll()
    aliased = result.aliased["m"]
    assert set(aliased) == {old, "5"}
    assert aliased[old].tags == {"k": "old"} and aliased[old].version == old


def test_run_shows_every_poll_to_on_poll_before_its_changes() -> None:
    async def scenario() -> list[str]:
        reg = InMemoryRegistry()
        reg.set_alias("m", "champion", reg.add_version("m"))
        seen: list[str] = []
        stop = asyncio.Event()
        watcher = RegistryWatcher(reg, ["m"], settings=WatchSettings(interval=0.05))

        def polled(result) -> None:
            seen.append("poll")

        def changed(changes) -> None:
            seen.append("changes")

        task = asyncio.create_task(watcher.run(changed, stop, on_poll=polled))
        while seen.count("poll") < 3:
            await asyncio.sleep(0.01)
        stop.set()
        await task
        return seen

    seen = asyncio.run(scenario())
    assert seen[:2] == ["poll", "changes"]  # the first poll sees the model appear
    assert "changes" not in seen[2:]  # later polls change nothing, and are still shown


def _many(count: int) -> InMemoryRegistry:
    reg = InMemoryRegistry()
    for i in range(count):
        reg.set_alias(f"m{i:02d}", "champion", reg.add_version(f"m{i:02d}"))
    return reg


def test_with_many_models_a_quiet_poll_costs_one_listing_and_a_change_one_model() -> None:
    reg = _many(30)
    settings = WatchSettings(sweep_from=8, full_every=100)
    watcher = RegistryWatcher(reg, [f"m{i:02d}" for i in range(30)], settings=settings)
    watcher.poll()  # the first poll reads every model in full
    reg.calls.clear()
    quiet = watcher.poll()
    assert quiet.changes == () and len(quiet.unchanged) == 30
    assert reg.calls == ["list_models"]  # (the fake records no health check)
    reg.set_alias("m07", "challenger", reg.add_version("m07"))
    reg.calls.clear()
    result = watcher.poll()
    assert _kinds(result.changes) == [
        (ChangeKind.VERSION_CREATED, "2", None),
        (ChangeKind.ALIAS_SET, "2", "challenger"),
    ]
    assert reg.calls == ["list_models", "get_model", "search_versions"]
    assert set(result.aliased) == {"m07"} and "m07" not in result.unchanged


def test_with_many_models_each_is_still_read_in_full_every_few_polls() -> None:
    reg = _many(10)
    settings = WatchSettings(sweep_from=8, full_every=3)
    watcher = RegistryWatcher(reg, [f"m{i:02d}" for i in range(10)], settings=settings)
    watcher.poll()
    reg.set_version_tag("m03", "1", "k", "v")  # moves no alias, and no update time here
    seen = []
    for _ in range(3):
        seen += [c for c in watcher.poll().changes if c.kind is ChangeKind.TAG_SET]
    assert [(c.model, c.key) for c in seen] == [("m03", "k")]


def test_with_few_models_there_is_no_listing() -> None:
    reg = _many(3)
    watcher = RegistryWatcher(reg, ["m00", "m01", "m02"], settings=WatchSettings(sweep_from=8))
    watcher.poll()
    reg.calls.clear()
    watcher.poll()
    assert "list_models" not in reg.calls and reg.calls.count("get_model") == 3
