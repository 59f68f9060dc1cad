"""Remember which arms scored which item, and turn one true label into paired outcomes.

Pure: no I/O, clock injected. An *item* is one text of a request; its id follows the
contract's rule (:func:`modeldeploy.serving.contract.ids.item_ids`, which the predictor
uses too). Feedback names items, so the router keys by item id. Outcomes, label matching
and the bounded store are the contract's.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from modeldeploy.serving.contract.ids import item_ids, label_matches, request_of
from modeldeploy.serving.contract.names import PAIRED_OUTCOMES, paired_outcome
from modeldeploy.serving.contract.store import (
    DEFAULT_STORE_CAPACITY,
    DEFAULT_STORE_TTL_S,
    BoundedStore,
    Lookup,
)

__all__ = [
    "PAIRED_OUTCOMES",
    "ArmPrediction",
    "ScoreBook",
    "ScoredItem",
    "item_ids",
    "paired_outcome",
    "pairs",
    "request_of",
    "shadow_agrees",
]


@dataclass(frozen=True)
class ArmPrediction:
    """What one arm answered for one item."""

    model_version: str
    label: str
    label_index: int

    def matches(self, true_label: object) -> bool:
        """True when ``true_label`` (class index, ASCII-digit string or name) is this prediction."""
        return label_matches(true_label, self.label, self.label_index)


@dataclass
class ScoredItem:
    """The arms that scored one item, filled in as their answers arrive."""

    predictions: dict[str, ArmPrediction] = field(default_factory=dict)
    labelled: bool = False


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
    """Item id -> :class:`ScoredItem`, in the contract's :class:`BoundedStore`.

    An item's TTL starts with the first arm's answer; later answers (and a new request
    reusing a labelled id) join the same entry, so a labelled item stays labelled.
    """

    def __init__(
        self,
        capacity: int = DEFAULT_STORE_CAPACITY,
        ttl_s: float = DEFAULT_STORE_TTL_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._store: BoundedStore[ScoredItem] = BoundedStore(capacity, ttl_s, clock)
        self.capacity = capacity
        self.ttl_s = ttl_s

    def __len__(self) -> int:
        return len(self._store)

    def record(self, item_ids: Sequence[str], role: str, answers: Sequence[ArmPrediction]) -> None:
        """Store one arm's answers for the items of one request."""
        for item_id, answer in zip(item_ids, answers, strict=True):
            self._store.setdefault(item_id, ScoredItem).predictions[role] = answer

    def lookup(self, item_id: str) -> tuple[Lookup, ScoredItem | None]:
        return self._store.lookup(item_id)

    def get(self, item_id: str) -> ScoredItem | None:
        return self._store.get(item_id)
