"""``modeldeploy operator run`` hands kopf a peering mode it can run in, a priority of its
own per replica, and an executor whose blocked calls never hold the process at exit."""

from __future__ import annotations

import subprocess
import sys
import time
from typing import Any

import kopf
import pytest

from modeldeploy.operator.runner import replica_priority, run_operator


def _run(monkeypatch: pytest.MonkeyPatch, **kwargs: Any) -> dict[str, Any]:
    seen: dict[str, Any] = {}

    async def operator(**given: Any) -> None:
        seen.update(given)

    monkeypatch.setattr(kopf, "operator", operator)
    args = {"namespaces": ["ml"], "all_namespaces": False, "liveness": "", **kwargs}
    assert run_operator(peering="modeldeploy", **args) == 0
    return seen


@pytest.mark.parametrize(("standalone", "peering"), [(True, None), (False, "modeldeploy")])
def test_standalone_names_no_peering_so_kopf_does_not_wait_for_one(
    monkeypatch: pytest.MonkeyPatch, standalone: bool, peering: str | None
) -> None:
    seen = _run(monkeypatch, standalone=standalone)
    assert seen["standalone"] is standalone and seen["peering_name"] == peering


def test_each_replica_draws_its_own_priority_so_exactly_one_stays_active(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # kopf pauses every peer when two share the highest priority (it was 0 for all).
    drawn = {_run(monkeypatch, standalone=False)["priority"] for _ in range(20)}
    assert len(drawn) == 20 and min(drawn) >= 1
    assert _run(monkeypatch, standalone=False, priority=7)["priority"] == 7
    assert _run(monkeypatch, standalone=False, priority=7)["memo"].priority == 7


def test_a_negative_priority_is_refused() -> None:
    with pytest.raises(ValueError, match="priority"):
        replica_priority(-1)


def test_a_blocked_call_in_the_default_executor_does_not_hold_the_exit() -> None:
    script = (
        "import asyncio, time\n"
        "from modeldeploy.operator.runner import DaemonThreads\n"
        "async def main():\n"
        "    asyncio.get_running_loop().set_default_executor(DaemonThreads())\n"
        "    blocked = asyncio.ensure_future(asyncio.to_thread(time.sleep, 60))\n"
        "    assert await asyncio.to_thread(sum, [1, 2]) == 3\n"
        "    await asyncio.sleep(0.1)\n"
        "    assert not blocked.done()\n"
        "asyncio.run(main())\n"
    )
    started = time.monotonic()
    done = subprocess.run([sys.executable, "-c", script], timeout=30, capture_output=True)
    assert done.returncode == 0, done.stderr.decode()
    assert time.monotonic() - started < 20  # not the 60 s the blocked call would take
