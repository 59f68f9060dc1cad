"""Local mode can put each arm's predictor on CPUs of its own (``local/cpus.py``), as pods
have theirs (opt-in: ``--pin-cpus``)."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import pytest

from modeldeploy.operator.local import platform as local_platform
from modeldeploy.operator.local import procs
from modeldeploy.operator.local.cpus import arm_cpus
from modeldeploy.operator.local.platform import LocalOptions, LocalPlatform
from modeldeploy.operator.local.state import StateDir
from tests.unit.local.test_local_client_view import V1, V2, V3, Recorder, target


@pytest.mark.parametrize(
    ("available", "per_arm", "stable", "canary"),
    [
        ({0, 1}, 1, {0}, {1}),  # the 2-core machine: one core each, everything else floats
        ({0, 1, 2, 3, 4, 5, 6, 7}, 2, {0, 1}, {2, 3}),
        ({9, 3, 7, 5}, 1, {3}, {5}),  # a restricted mask: the CPUs it allows, in order
        ({0, 1, 2, 3}, 2, {0, 1}, {2, 3}),
    ],
)
def test_stable_and_the_canary_get_disjoint_sets_of_the_threads_size(
    available: set[int], per_arm: int, stable: set[int], canary: set[int]
) -> None:
    assert arm_cpus("stable", available, per_arm) == stable
    assert arm_cpus("canary", available, per_arm) == canary


@pytest.mark.parametrize(
    ("role", "available", "per_arm"),
    [
        ("stable", {0}, 1),  # one CPU: both arms would share it
        ("canary", {0, 1, 2}, 2),  # no two disjoint pairs
        ("stable", {0, 1}, 0),
        ("router", {0, 1, 2, 3}, 1),  # helpers float
    ],
)
def test_nothing_is_pinned_without_room_for_two_disjoint_sets(
    role: str, available: set[int], per_arm: int
) -> None:
    assert arm_cpus(role, available, per_arm) is None


class Pins(Recorder):
    """Also records the CPUs each process was asked to run on."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        super().__init__(monkeypatch)
        self.cpus: dict[str, frozenset[int] | None] = {}

    def start(self, name: str, argv: list[str], *, port: int, labels: Any = None, **kw: Any):
        self.cpus[name] = kw.get("cpus")
        return super().start(name, argv, port=port, labels=labels)


def _threads(argv: list[str]) -> int:
    return int(argv[argv.index("--threads") + 1])


def test_each_arm_is_pinned_by_role_with_as_many_threads_as_cpus(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake = Pins(monkeypatch)
    monkeypatch.setattr(local_platform, "usable_cpus", lambda: frozenset(range(4)))
    options = LocalOptions(threads=2, pin_cpus=True)
    platform = LocalPlatform(StateDir(tmp_path / "state"), options)
    platform.set_canary(target(), V1, V2, 10)
    assert fake.cpus["s-stable-v1"] == {0, 1}
    assert fake.cpus["s-canary-v2"] == {2, 3}
    assert _threads(fake.argv["s-stable-v1"]) == _threads(fake.argv["s-canary-v2"]) == 2
    assert fake.cpus["s-router"] is None and fake.cpus["s-joiner"] is None  # helpers float
    assert platform._arms(target())["canary"].labels["cpus"] == "2,3"

    # The promoted version starts as stable, on stable's set; the next canary on the canary's.
    platform.promote(target(), V2)
    assert fake.cpus["s-stable-v2"] == {0, 1}
    platform.set_canary(target(), V2, V3, 10)
    assert fake.cpus["s-canary-v3"] == {2, 3}


@pytest.mark.parametrize(
    ("options", "cpus"),
    [(LocalOptions(), range(4)), (LocalOptions(pin_cpus=True), {0})],
)
def test_off_by_default_or_on_one_cpu_every_process_floats(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, options: LocalOptions, cpus: Any
) -> None:
    fake = Pins(monkeypatch)
    monkeypatch.setattr(local_platform, "usable_cpus", lambda: frozenset(cpus))
    LocalPlatform(StateDir(tmp_path / "state"), options).set_canary(target(), V1, V2, 10)
    assert fake.cpus["s-stable-v1"] is None and fake.cpus["s-canary-v2"] is None


def test_a_real_child_and_the_threads_it_starts_later_run_on_the_set(tmp_path: Path) -> None:
    cpu = frozenset({min(os.sched_getaffinity(0))})
    code = "import threading, time; threading.Thread(target=time.sleep, args=(30,)).start()"
    seen: list[procs.ProcRecord] = []

    def two_threads() -> bool:
        return bool(seen) and len(os.listdir(f"/proc/{seen[0].pid}/task")) >= 2

    record = procs.start(
        "pinned",
        [sys.executable, "-c", code + "; time.sleep(30)"],
        port=0,
        log_dir=tmp_path,
        ready=two_threads,
        timeout=30,
        on_spawn=seen.append,
        cpus=cpu,
    )
    try:
        tasks = [int(t) for t in os.listdir(f"/proc/{record.pid}/task")]
        assert len(tasks) >= 2
        assert {frozenset(os.sched_getaffinity(t)) for t in tasks} == {cpu}
    finally:
        procs.stop(record, timeout=5)
