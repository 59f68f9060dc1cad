"""The canary weight schedule: which step comes next and what weight it carries.

Kept apart from the state machine so the traffic plan can be read and tested alone.
Step ``-1`` is the optional shadow phase: the canary runs and is probed at 0% live traffic.
"""

from __future__ import annotations

from collections.abc import Sequence

SHADOW_STEP = -1


def first_step(steps: Sequence[int], shadow: bool) -> int:
    """The step a new rollout starts at."""
    return SHADOW_STEP if shadow else 0


def weight_at(steps: Sequence[int], step: int) -> int:
    """The canary's share of live traffic (percent) at ``step``."""
    if step == SHADOW_STEP:
        return 0
    return int(steps[min(step, len(steps) - 1)])


def next_step(steps: Sequence[int], step: int) -> int | None:
    """The step after ``step``, or None when ``step`` is the last one."""
    return step + 1 if step + 1 < len(steps) else None


def is_final(steps: Sequence[int], step: int) -> bool:
    """True at the last step: the only one after which the canary may be promoted."""
    return step == len(steps) - 1
