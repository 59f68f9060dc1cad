"""Each local predictor on its own CPUs, as each pod has its own (pure choice + one syscall).

On one machine the two arms' predictors otherwise share every core with each other and with
everything else, and which process a request happens to overlap with sets each arm's tail:
equal models then measure unequal P99s (docs/demo.md, "The knobs"). Pods of a KServe
rollout have CPUs of their own. Local mode can imitate that: stable's predictor gets the first
``per_arm`` CPUs the operator may use, the canary's the next ``per_arm``, and the router,
joiner, prober and anything else keep floating over all of them. The predictor's torch
threads equal the CPUs in its set (``LocalOptions.threads``), so no thread waits for a
sibling on its own core.

It is opt-in (``LocalOptions.pin_cpus``, ``local apply --pin-cpus``): on the shared 2-core
development machine it did not make equal arms measure more equal latencies (P99 ratios
0.75-1.34 pinned, 0.78-1.16 floating; the canary's P50 the higher in 5 of 8 pinned runs, on
either core; docs/demo.md, "The knobs"), and
each pinned predictor shares its one core with whatever else runs there and cannot move
away. It is the pod-like setting for a machine with cores to spare (not measured there).

The set goes by role, not by version: a promotion starts the new version as stable
(``LocalPlatform.promote``), so the arm compared against a canary is always on the stable
set. When the machine has too few CPUs for two disjoint sets, nothing is pinned.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

from modeldeploy.operator.local.threads import each_thread

SLOTS = {"stable": 0, "canary": 1}
"""Which CPU set each role gets: the first ``per_arm`` CPUs for stable, the next for the canary."""


def arm_cpus(role: str, available: Iterable[int], per_arm: int) -> frozenset[int] | None:
    """The CPUs a ``role`` predictor is pinned to, or None (not pinned).

    None for a role without a slot, for ``per_arm < 1``, and when ``available`` holds fewer
    than two disjoint sets of ``per_arm`` CPUs (then pinning would put both arms on the same
    cores, or leave one without any).
    """
    slot = SLOTS.get(role)
    cpus = sorted(set(available))
    if slot is None or per_arm < 1 or len(cpus) < per_arm * len(SLOTS):
        return None
    return frozenset(cpus[slot * per_arm : (slot + 1) * per_arm])


def usable_cpus() -> frozenset[int]:
    """The CPUs this process may run on (its affinity mask, not ``os.cpu_count()``)."""
    return frozenset(os.sched_getaffinity(0))


def pin(pid: int, cpus: frozenset[int], proc: Path = Path("/proc")) -> None:
    """Set the affinity of every thread of ``pid`` (a thread started later inherits it).

    ``sched_setaffinity`` on a pid only moves that one thread (``threads.each_thread``). A
    task that has already exited is skipped; an error for the process itself is raised
    (``OSError``).
    """
    each_thread(pid, lambda tid: os.sched_setaffinity(tid, cpus), proc)
