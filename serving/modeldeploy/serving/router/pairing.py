"""Remember which arms scored which item, and turn one true label into paired outcomes.

Pure: no I/O, clock injected. An *item* is one text of a request; its id follows the
contract's rule (:func:`modeldeploy.serving.contract.ids.item_ids`, which the predictor
uses too). Feedback names items, so the router keys by item id. Outcomes, label matching
and the bounded store are the contract's.

Pairing on label arrival: a label for an item only one of stable and canary scored is
worth about five unpaired labels once the other arm has scored it too
(docs/statistics.md). So the router keeps each request's input (:class:`InputBook`,
bounded by count, bytes and age), and when such a label arrives it has the missing arm
(:func:`rescore_role`) score the stored input, within a :class:`RescoreBudget`, and no
closer to the previous re-score of that arm than a :class:`RescorePacer` allows.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from modeldeploy.serving.auth import RateLimiter
from modeldeploy.serving.contract.ids import item_ids, label_matches, request_of
from modeldeploy.serving.contract.names import PAIRED_OUTCOMES, paired_outcome
from modeldeploy.serving.contract.store import (
    DEFAULT_STORE_CAPACITY,
    DEFAULT_STORE_TTL_S,
    BoundedStore,
    Lookup,
)

DEFAULT_RESCORES_PER_S = 20.0
"""Router default budget of re-scores per second for pairing on label arrival.

Each costs one inference on the arm that did not serve the request. 20/s pairs every
label of a deployment labelled at up to 20/s (the demo labels about 10/s) and caps the
extra compute at 20 inferences/s, a few percent of one CPU predictor's capacity."""
DEFAULT_INPUT_BYTES = 64 * 1024 * 1024
"""Router default memory for stored inputs (about 300,000 one-sentence requests)."""

__all__ = [
    "PAIRED_OUTCOMES",
    "ArmPrediction",
    "InputBook",
    "RescoreBudget",
    "RescorePacer",
    "ScoreBook",
    "ScoredItem",
    "StoredInput",
    "item_ids",
    "paired_outcome",
    "pairs",
    "request_of",
    "rescore_role",
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
    arm_ids: dict[str, str] = field(default_factory=dict)
    """Role -> the id an arm stored this item under, where it is not the router's own.

    With issued ids a predictor keeps the router's id only while it is fresh (see
    ``modeldeploy.serving.feedback.ROUTER_ID_WINDOW_S``); an input re-scored later, when
    its label arrives, is stored under an id of the arm's own, and the label is forwarded
    to that arm under it."""


def pairs(predictions: Mapping[str, ArmPrediction]) -> list[tuple[ArmPrediction, ArmPrediction]]:
    """(stable, candidate) pairs an item supports: stable with the canary and/or the shadow."""
    stable = predictions.get("stable")
    if stable is None:
        return []
    return [(stable, predictions[r]) for r in ("canary", "shadow") if r in predictions]


def rescore_role(predictions: Mapping[str, ArmPrediction], arms: Sequence[str]) -> str | None:
    """The arm that should score a labelled item so it pairs, or None.

    Only stable and canary pair (the shadow is mirrored every request already): an item
    stable alone scored goes to the canary, one the canary alone scored goes to stable,
    and only when that arm is configured (``arms``).
    """
    have_stable, have_canary = "stable" in predictions, "canary" in predictions
    if have_stable and not have_canary and "canary" in arms:
        return "canary"
    if have_canary and not have_stable and "stable" in arms:
        return "stable"
    return None


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


@dataclass(frozen=True)
class StoredInput:
    """One routed request as the arms got it, kept until its label may need a second arm."""

    path: str
    body: bytes
    headers: Mapping[str, str]
    protocol: str

    @property
    def size(self) -> int:
        return (
            len(self.body) + len(self.path) + sum(len(k) + len(v) for k, v in self.headers.items())
        )


class InputBook:
    """Request id -> :class:`StoredInput`: bounded by entries, total bytes and age.

    Not the contract's :class:`BoundedStore`: inputs vary in size, so a count alone would
    not bound memory. Oldest out first on every bound; a body larger than
    ``max_bytes`` is not kept at all (its labels stay unpaired).
    """

    def __init__(
        self,
        capacity: int = DEFAULT_STORE_CAPACITY,
        max_bytes: int = DEFAULT_INPUT_BYTES,
        ttl_s: float = DEFAULT_STORE_TTL_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if capacity < 1 or max_bytes < 1 or not ttl_s > 0:
            raise ValueError("capacity and max_bytes must be >= 1 and ttl_s > 0")
        self.capacity = capacity
        self.max_bytes = max_bytes
        self.ttl_s = ttl_s
        self._clock = clock
        self._entries: OrderedDict[str, tuple[float, StoredInput]] = OrderedDict()
        self.bytes = 0

    def __len__(self) -> int:
        return len(self._entries)

    def _drop_oldest(self) -> None:
        _, (_, gone) = self._entries.popitem(last=False)
        self.bytes -= gone.size

    def _expire(self, now: float) -> None:
        while self._entries and now - next(iter(self._entries.values()))[0] >= self.ttl_s:
            self._drop_oldest()

    def put(self, request_id: str, stored: StoredInput) -> bool:
        """Keep ``stored`` (a fresh entry); False when it alone is over ``max_bytes``."""
        now = self._clock()
        self._expire(now)
        self.pop(request_id)
        if stored.size > self.max_bytes:
            return False
        self._entries[request_id] = (now, stored)
        self.bytes += stored.size
        while len(self._entries) > self.capacity or self.bytes > self.max_bytes:
            self._drop_oldest()
        return True

    def get(self, request_id: str) -> StoredInput | None:
        self._expire(self._clock())
        entry = self._entries.get(request_id)
        return entry[1] if entry is not None else None

    def pop(self, request_id: str) -> StoredInput | None:
        entry = self._entries.pop(request_id, None)
        if entry is None:
            return None
        self.bytes -= entry[1].size
        return entry[1]


class RescoreBudget:
    """A token bucket of re-scores per second: pairing on label costs at most this compute.

    ``rate_per_s`` 0 turns pairing on label off; the bucket holds one second's worth
    (at least one), so a burst of labels is paired up to that and the rest stay unpaired.
    """

    def __init__(self, rate_per_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        if rate_per_s < 0:
            raise ValueError(f"the re-score rate must be >= 0, got {rate_per_s}")
        self.rate_per_s = rate_per_s
        self._bucket = (
            RateLimiter(rate_per_s, max(1.0, rate_per_s), max_keys=1, clock=clock)
            if rate_per_s > 0
            else None
        )

    @property
    def enabled(self) -> bool:
        return self._bucket is not None

    def take(self) -> bool:
        """Spend one re-score; False when the budget is spent (or pairing is off)."""
        return self._bucket is not None and self._bucket.allow("rescore")


class RescorePacer:
    """Spaces the re-scores sent to each arm at least ``gap_s`` apart (reserve, then sleep).

    Labels arrive in clumps (a reviewer's batch, a poller's wake-up), and without pacing
    each clump became a burst of simultaneous re-scores on the one arm whose items were
    unpaired: with local mode's paired share of 1.0 that is always the canary (stable
    already scored every canary request). Re-scores count in the arm's latency histogram,
    so the canary queued behind its own bursts and its P99 rose for that reason alone:
    measured with real ``tiny``/``tiny-distilbert`` predictors at 40 requests/s, 50% canary,
    62% of re-scores arrived while another call to the canary was in flight (under 1.5% of
    stable's calls) and the canary's P99 was 1.55x stable's either way round; with
    pairing on label off it was 1.05x (docs/serving.md, "Router pairing"). Paced, an arm
    sees re-scores as it sees user traffic: one at a time.
    """

    def __init__(self, gap_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        if gap_s < 0:
            raise ValueError(f"the re-score gap must be >= 0, got {gap_s}")
        self.gap_s = gap_s
        self._clock = clock
        self._next: dict[str, float] = {}

    @classmethod
    def for_rate(
        cls, rate_per_s: float, clock: Callable[[], float] = time.monotonic
    ) -> RescorePacer:
        """Half the budget's mean gap: a full bucket (one second's worth) drains in 0.5 s,
        so a label post waits at most that long for its slot, and the bursts still part."""
        return cls(0.5 / rate_per_s if rate_per_s > 0 else 0.0, clock)

    def reserve(self, role: str) -> float:
        """Seconds to wait before sending the next re-score to ``role`` (its slot is taken)."""
        now = self._clock()
        slot = max(now, self._next.get(role, now))
        self._next[role] = slot + self.gap_s
        return slot - now
