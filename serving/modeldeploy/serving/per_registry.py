"""Collectors made once per Prometheus registry, held only while the registry lives.

A process has one registry, but tests and embedded servers make many; registering the same
series twice in one registry raises, so a module keeps the collectors it made per registry.
Keyed by the registry itself, weakly: the ``id()`` keys used before outlived their registry,
and a new registry created at the same address was handed collectors registered in the dead
one, whose series it then never exported.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable
from typing import Any, Generic, TypeVar

T = TypeVar("T")


class PerRegistry(Generic[T]):
    """``cache(registry)``: what ``make(registry)`` built for it, built on first use."""

    def __init__(self, make: Callable[[Any], T]) -> None:
        self._make = make
        self._made: weakref.WeakKeyDictionary[Any, T] = weakref.WeakKeyDictionary()

    def __call__(self, registry: Any) -> T:
        if registry not in self._made:
            self._made[registry] = self._make(registry)
        return self._made[registry]
