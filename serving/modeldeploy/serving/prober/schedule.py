"""Which golden example the prober sends next, so that each counts at most once (pure).

A golden set is a finite population and the models are deterministic: sending an example
to the same two versions again returns the same two answers, so it adds no evidence, and
counting it as a new pair would shrink the confidence interval with no new information
(docs/statistics.md, "Golden-set probes"). So within one rollout (one stable version
against one canary version) every example is used at most once, and the prober stops
when the set is used up.

Nothing needs to be stored for that, so a restart (of the prober, its pod, or the
operator) cannot re-count:

- the order is a permutation fixed by the rollout's key (deployment, both versions, the
  golden set's digest): every process that probes this rollout walks the same order;
- example ``k`` of that order has a slot, due at ``since + k / rate``, where ``since`` is
  the canary's start time from the resource status (durable), and it is never sent before
  its slot is due;
- a process that starts (or starts again) begins at the first slot due after
  ``now + margin``. Any example an earlier process sent was sent at or after its slot, and
  before the new process started, so its slot is already past: it is never sent again. The
  examples whose slots passed while no prober ran are skipped (lost, never repeated).

This needs one prober per rollout at a time (one process per deployment locally; one
joiner replica with ``strategy: Recreate`` on a cluster) and clocks that agree within
``margin`` when a restarted prober runs on another machine.
"""

from __future__ import annotations

import hashlib
import math
import random
from dataclasses import dataclass

DEFAULT_MARGIN_S = 1.0


def rollout_key(deployment: str, stable: str, canary: str, golden_digest: str) -> str:
    """The identity of one rollout's probing: a new key starts the golden set afresh."""
    return f"{deployment}\x00{stable}\x00{canary}\x00{golden_digest}"


def order(key: str, size: int) -> tuple[int, ...]:
    """The fixed order of the ``size`` examples for ``key`` (same key, same order)."""
    seed = int.from_bytes(hashlib.sha256(key.encode("utf-8")).digest()[:8], "big")
    indexes = list(range(size))
    random.Random(seed).shuffle(indexes)
    return tuple(indexes)


@dataclass(frozen=True)
class Schedule:
    """Slot ``k`` is due at ``since + k / rate``; ``size`` slots in all."""

    since: float
    rate: float
    size: int

    def __post_init__(self) -> None:
        if not (self.rate > 0 and math.isfinite(self.rate)):
            raise ValueError("the probe rate must be a positive number")
        if self.size < 0 or not math.isfinite(self.since):
            raise ValueError("a schedule needs a finite start and a size >= 0")

    def due(self, k: int) -> float:
        return self.since + k / self.rate

    def first_unused(self, now: float, margin: float = DEFAULT_MARGIN_S) -> int:
        """The first slot a process starting at ``now`` may use: due after ``now + margin``.

        Before the rollout's start (``now + margin < since``) that is slot 0.
        """
        after = (now + margin - self.since) * self.rate
        if after < 0:
            return 0
        return min(self.size, math.floor(after) + 1)

    def exhausted(self, k: int) -> bool:
        return k >= self.size
