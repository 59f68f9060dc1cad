"""Apply a per-thread setting to every thread of a process (CPU affinity, nice value).

Linux keeps affinity and nice value per thread: a call on a pid changes only that one
thread, and threads started later inherit from the thread that starts them. So a setting
meant for a whole child is applied to every task listed under ``/proc/PID/task``; a freshly
started child has just the one.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path


def each_thread(pid: int, apply: Callable[[int], None], proc: Path = Path("/proc")) -> None:
    """Call ``apply(tid)`` for every thread of ``pid`` (for ``pid`` alone if none is listed).

    A thread that has exited meanwhile is skipped; an error for the process itself is raised
    (``OSError``).
    """
    try:
        tids = [int(entry.name) for entry in (proc / str(pid) / "task").iterdir()]
    except OSError:
        tids = []
    for tid in tids or [pid]:
        try:
            apply(tid)
        except ProcessLookupError:
            if tid == pid:
                raise
