"""One bounded, expiring map from id to entry: the predictor's feedback store and the router's
score book are both this.

Bounded three ways: at most ``capacity`` entries, at most ``max_bytes`` of memory (oldest
out first, for both), and each entry for ``ttl_s`` seconds after it was created. Ids that
left are remembered in a tombstone set, so a late lookup can say "expired" rather than
"unknown"; tombstones get their own share of the byte budget (``TOMBSTONE_SHARE``), so
they can never grow the process past it either. Insertion order is creation order, so
expiry only ever looks at the front. Pure: the clock is injected.

Bytes are estimated, not measured per object: each entry costs ``ENTRY_BASE_BYTES`` plus
its key's length, each tombstone ``TOMBSTONE_BASE_BYTES`` plus its key's length. The bases
were measured with ``tracemalloc`` on the predictor's store (36-character request ids:
about 266 bytes an entry, 99 a tombstone), so the estimate tracks the real growth that a
count bound alone let reach about 36 MiB (100k entries and 100k tombstones).
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
DEFAULT_STORE_MAX_BYTES = 16 * 1024 * 1024
ENTRY_BASE_BYTES = 230
TOMBSTONE_BASE_BYTES = 64
TOMBSTONE_SHARE = 0.2
"""Share of ``max_bytes`` kept for tombstones; entries get the rest."""


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
        max_bytes: int = DEFAULT_STORE_MAX_BYTES,
    ) -> None:
        if capacity < 1 or not ttl_s > 0:
            raise ValueError(f"capacity must be >= 1 and ttl_s > 0 (got {capacity}, {ttl_s})")
        if max_bytes < 4 * (ENTRY_BASE_BYTES + TOMBSTONE_BASE_BYTES):
            raise ValueError(f"max_bytes {max_bytes} is too small to hold a few entries")
        self.capacity = capacity
        self.ttl_s = ttl_s
        self.max_bytes = max_bytes
        self._tombstone_budget = int(max_bytes * TOMBSTONE_SHARE)
        self._entry_budget = max_bytes - self._tombstone_budget
        self._clock = clock
        self._entries: OrderedDict[str, _Entry[V]] = OrderedDict()
        self._gone: OrderedDict[str, None] = OrderedDict()
        self._entry_bytes = 0
        self._gone_bytes = 0

    def __len__(self) -> int:
        return len(self._entries)

    @property
    def tombstones(self) -> int:
        return len(self._gone)

    @property
    def estimated_bytes(self) -> int:
        """Entries and tombstones together, by the module's cost model."""
        return self._entry_bytes + self._gone_bytes

    def _drop_entry(self, key: str) -> None:
        if self._entries.pop(key, None) is not None:
            self._entry_bytes -= ENTRY_BASE_BYTES + len(key)

    def _forget(self, key: str) -> None:
        self._drop_entry(key)
        if key not in self._gone:
            self._gone[key] = None
            self._gone_bytes += TOMBSTONE_BASE_BYTES + len(key)
        while len(self._gone) > self.capacity or self._gone_bytes > self._tombstone_budget:
            old, _ = self._gone.popitem(last=False)
            self._gone_bytes -= TOMBSTONE_BASE_BYTES + len(old)

    def _expire(self, now: float) -> None:
        while self._entries:
            key, entry = next(iter(self._entries.items()))
            if now - entry.created_at < self.ttl_s:
                return
            self._forget(key)

    def _insert(self, key: str, value: V, now: float) -> None:
        if self._gone.pop(key, 0) is None:  # it was a tombstone: it is back
            self._gone_bytes -= TOMBSTONE_BASE_BYTES + len(key)
        self._entries[key] = _Entry(value, now)
        self._entry_bytes += ENTRY_BASE_BYTES + len(key)
        while len(self._entries) > self.capacity or self._entry_bytes > self._entry_budget:
            self._forget(next(iter(self._entries)))

    def put(self, key: str, value: V, keep: Callable[[V], bool] | None = None) -> bool:
        """Store ``value`` under ``key`` as a new entry (a fresh TTL, at the back), unless
        ``key`` holds a live entry that ``keep`` says to keep. Returns whether it stored.

        One clock reading and one expiry pass for the check and the store together: the
        predictor stores every prediction on the event loop.
        """
        now = self._clock()
        self._expire(now)
        if keep is not None:
            entry = self._entries.get(key)
            if entry is not None and keep(entry.value):
                return False
        self._drop_entry(key)
        self._insert(key, value, now)
        return True

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
