"""One bounded, expiring map from id to entry: the predictor's feedback store and the router's
score book are both this.

Bounded twice: at most ``capacity`` entries (oldest out first) and each for ``ttl_s``
seconds after it was created. Ids that left are remembered in a tombstone set of the
same bound, so a late lookup can say "expired" rather than "unknown". Insertion order is
creation order, so expiry only ever looks at the front. Pure: the clock is injected.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Generic, Literal, TypeVar

V = TypeVar("V")
Lookup = Literal["found", "unknown", "expired"]

DEFAULT_STORE_CAPACITY = 100_000
DEFAULT_STORE_TTL_S = 3600.0


@dataclass
class _Entry(Generic[V]):
    value: V
    created_at: float


class BoundedStore(Generic[V]):
    """Entries by id with a size bound and a TTL (see the module docstring)."""

    def __init__(
        self,
        capacity: int = DEFAULT_STORE_CAPACITY,
        ttl_s: float = DEFAULT_STORE_TTL_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if capacity < 1 or not ttl_s > 0:
            raise ValueError(f"capacity must be >= 1 and ttl_s > 0 (got {capacity}, {ttl_s})")
        self.capacity = capacity
        self.ttl_s = ttl_s
        self._clock = clock
        self._entries: OrderedDict[str, _Entry[V]] = OrderedDict()
        self._gone: OrderedDict[str, None] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    def _forget(self, key: str) -> None:
        self._entries.pop(key, None)
        self._gone[key] = None
        while len(self._gone) > self.capacity:
            self._gone.popitem(last=False)

    def _expire(self, now: float) -> None:
        while self._entries:
            key, entry = next(iter(self._entries.items()))
            if now - entry.created_at < self.ttl_s:
                return
            self._forget(key)

    def _insert(self, key: str, value: V, now: float) -> None:
        self._gone.pop(key, None)
        self._entries[key] = _Entry(value, now)
        while len(self._entries) > self.capacity:
            self._forget(next(iter(self._entries)))

    def put(self, key: str, value: V) -> None:
        """Store ``value`` under ``key`` as a new entry (a fresh TTL, at the back)."""
        now = self._clock()
        self._expire(now)
        self._entries.pop(key, None)
        self._insert(key, value, now)

    def setdefault(self, key: str, make: Callable[[], V]) -> V:
        """The live entry of ``key``, or ``make()`` stored as a new one (its TTL unchanged)."""
        now = self._clock()
        self._expire(now)
        entry = self._entries.get(key)
        if entry is not None:
            return entry.value
        value = make()
        self._insert(key, value, now)
        return value

    def lookup(self, key: str) -> tuple[Lookup, V | None]:
        """``("found", value)``, or ``("expired" | "unknown", None)``."""
        self._expire(self._clock())
        entry = self._entries.get(key)
        if entry is not None:
            return "found", entry.value
        return ("expired" if key in self._gone else "unknown"), None

    def get(self, key: str) -> V | None:
        return self.lookup(key)[1]
