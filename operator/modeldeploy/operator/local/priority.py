"""Local mode's helpers run below the predictors' CPU priority (pure choice + syscalls).

On one machine the router, the joiner, the prober and a traffic driver wake for every
request and take a core from whichever predictor is running; on the shared 2-core machine
a slow answer was mostly a predictor waiting for them (docs/demo.md, "The predictors first
on the CPU"), and which arm waited more set the equal arms' P99s apart. A pod's neighbours
do not take its CPU. Local mode imitates that by starting its helpers at a lower priority:
they still get every idle cycle, but a predictor with work runs first.

Two values have to move, because each local child runs in its own session: with Linux's
autogroup scheduling (``kernel.sched_autogroup_enabled = 1``, the default on most
distributions' kernels) the scheduler treats each session as one group, and a thread's nice
value only orders it against threads of the same group; between groups each group's own nice
value (``/proc/PID/autogroup``) counts. So ``lower`` raises the nice value of every thread of
the helper (threads it starts later inherit it) and, when the helper leads its own session,
that session's autogroup nice value. Raising a nice value needs no privilege; a kernel without
autogroup has no such file and only the threads' values matter there.
"""

from __future__ import annotations

import os
from pathlib import Path

from modeldeploy.operator.local.threads import each_thread

NICE_MAX = 19
"""The lowest priority Linux has (nice values run from -20 to 19)."""

HELPER_NICENESS = 10
"""How far below the predictors local mode starts its helpers by default: a weight of about
one tenth of a predictor's (the kernel's table gives 1024 at nice 0 and 110 at nice 10)."""


def lowered(current: int, by: int) -> int:
    """The nice value ``by`` steps below ``current`` in priority, capped at ``NICE_MAX``."""
    if by < 0:
        raise ValueError(f"can only lower a priority, not raise it (by={by})")
    return min(NICE_MAX, current + by)


def niceness(tid: int) -> int:
    """The nice value of thread (or single-threaded process) ``tid``."""
    return os.getpriority(os.PRIO_PROCESS, tid)


def autogroup_niceness(pid: int, proc: Path = Path("/proc")) -> int | None:
    """The nice value of ``pid``'s autogroup, or None where the kernel has no autogroups."""
    try:
        text = (proc / str(pid) / "autogroup").read_text()
    except OSError:
        return None
    # "/autogroup-1584 nice 0"
    fields = text.split()
    if len(fields) < 3 or fields[1] != "nice":
        return None
    return int(fields[2])


def lower(pid: int, by: int, proc: Path = Path("/proc")) -> None:
    """Lower ``pid`` by ``by`` nice steps: every thread, and its autogroup if it leads a session.

    A thread that has already exited is skipped; an error for the process itself is raised
    (``OSError``). The autogroup is only touched when ``pid`` leads its own session, so a
    helper that shares the caller's session never lowers the caller (or the user's shell).
    """
    if by == 0:
        return
    each_thread(
        pid, lambda tid: os.setpriority(os.PRIO_PROCESS, tid, lowered(niceness(tid), by)), proc
    )
    if os.getsid(pid) != pid:
        return
    group = autogroup_niceness(pid, proc)
    if group is not None:
        (proc / str(pid) / "autogroup").write_text(str(lowered(group, by)))
