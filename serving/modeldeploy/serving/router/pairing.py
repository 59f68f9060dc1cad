"""Remember which arms scored which item, and turn one true label into paired outcomes.

Pure: no I/O, clock injected. An *item* is one text of a request; its id follows the
predictor's rule (``codecs.item_ids``): the request id for a single text, else
``<request id>/<index>``. Feedback names items, so the router keys by item id.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

PAIRED_OUTCOMES = ("both_correct", "stable_only", "canary_only", "both_wrong")


@dataclass(frozen=True)
class ArmPrediction:
    """What one arm answered for one item."""

    model_version: str
    label: str
    label_index: int

    def matches(self, true_label: object) -> bool:
        """True when ``true_label`` (class index, digit string or name) is this prediction."""
        if isinstance(true_label, bool):
            return False
        if isinstance(true_label, int):
            return true_label == self.label_index
        if isinstance(true_label, str):
            if true_label == self.label:
                return True
            return true_label.isdigit() and int(true_label) == self.label_index
        return False


@dataclass
class ScoredItem:
    """The arms that scored one item, filled in as their answers arrive."""

    stored_at: float
    predictions: dict[str, ArmPrediction] = field(default_factory=dict)
    labelled: bool = False


def paired_outcome(stable_correct: bool, canary_correct: bool) -> str:
    """The ``outcome`` label of ``modeldeploy_paired_outcomes_total``."""
    if stable_correct and canary_correct:
        return "both_correct"
    if stable_correct:
        return "stable_only"
    if canary_correct:
        return "canary_only"
    return "both_wrong"


def pairs(predictions: Mapping[str, ArmPrediction]) -> list[tuple[ArmPrediction, ArmPrediction]]:
    """(stable, candidate) pairs an item supports: stable with the canary and/or the shadow."""
    stable = predictions.get("stable")
    if stable is None:
        return []
    return [(stable, predictions[r]) for r in ("canary", "shadow") if r in predictions]


def shadow_agrees(predictions: Mapping[str, ArmPrediction]) -> bool | None:
    """Whether shadow and stable predicted the same class; None unless both answered."""
    stable, shadow = predictions.get("stable"), predictions.get("shadow")
    if stable is None or shadow is None:
        return None
    return stable.label_index == shadow.label_index


class ScoreBook:
    """Bounded, TTL-limited map item id -> :class:`ScoredItem` (oldest out first)."""

    def __init__(
        self,
        capacity: int = 100_000,
        ttl_s: float = 3600.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.capacity = capacity
        self.ttl_s = ttl_s
        self._clock = clock
        self._items: OrderedDict[str, ScoredItem] = OrderedDict()

    def __len__(self) -> int:
        return len(self._items)

    def record(self, item_ids: Sequence[str], role: str, answers: Sequence[ArmPrediction]) -> None:
        """Store one arm's answers for the items of one request."""
        now = self._clock()
        self._expire(now)
        for item_id, answer in zip(item_ids, answers, strict=True):
            item = self._items.get(item_id)
            if item is None:
                item = self._items[item_id] = ScoredItem(stored_at=now)
            item.predictions[role] = answer
        while len(self._items) > self.capacity:
            self._items.popitem(last=False)

    def get(self, item_id: str) -> ScoredItem | None:
        self._expire(self._clock())
        return self._items.get(item_id)

    def _expire(self, now: float) -> None:
        while self._items:
            _, first = next(iter(self._items.items()))
            if now - first.stored_at < self.ttl_s:
                return
            self._items.popitem(last=False)


def item_ids(request_id: str, count: int) -> list[str]:
    """The predictor's per-text ids (``codecs.item_ids``; a unit test keeps them equal)."""
    if count == 1:
        return [request_id]
    return [f"{request_id}/{i}" for i in range(count)]


def request_of(item_id: str) -> str:
    """The request id an item id belongs to (``abc/3`` -> ``abc``; ``abc`` -> ``abc``)."""
    head, _, tail = item_id.rpartition("/")
    return head if head and tail.isdigit() else item_id
