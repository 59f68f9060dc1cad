"""Per-object wake-up events: what ends a rollout daemon's sleep before ``tick_seconds``.

In memory only, never state: a lost wake-up just waits for the next regular tick. The
registry watcher, the webhook receiver and the spec/annotation change handler set them.
"""

from __future__ import annotations

import asyncio

Key = tuple[str, str]  # (namespace, name)


class Wakers:
    """One ``asyncio.Event`` per ModelDeployment, created on first use (loop thread only)."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.events: dict[Key, asyncio.Event] = {}

    def event(self, namespace: str, name: str) -> asyncio.Event:
        return self.events.setdefault((namespace, name), asyncio.Event())

    def wake(self, namespace: str, name: str) -> None:
        """Tick ``namespace/name`` now (from the loop's thread)."""
        self.event(namespace, name).set()

    def wake_threadsafe(self, namespace: str, name: str) -> None:
        """Tick ``namespace/name`` now (from any thread)."""
        self.loop.call_soon_threadsafe(self.wake, namespace, name)

    def forget(self, namespace: str, name: str) -> None:
        """The object's daemon has ended; drop its event."""
        self.events.pop((namespace, name), None)


async def sleep(wake: asyncio.Event, stopped: object, seconds: float) -> None:
    """Return after ``seconds``, when ``wake`` is set, or when kopf stops the daemon."""
    waiters = {asyncio.ensure_future(wake.wait())}
    waiters.add(asyncio.ensure_future(stopped.wait()))  # type: ignore[attr-defined]
    try:
        await asyncio.wait(waiters, timeout=max(0.0, seconds), return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiter in waiters:
            waiter.cancel()
