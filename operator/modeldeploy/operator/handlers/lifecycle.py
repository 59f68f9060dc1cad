"""One kopf daemon per ModelDeployment runs its ticks; change handlers only wake it.

Why a daemon: ticks of one object are serialised by construction (one coroutine per
object), so no lock or fence is needed, and kopf stops it when the object goes away or
when this replica loses leader election. The daemon sleeps ``tick_seconds``, or less when
its wake-up event is set (a spec or annotation change, a registry change: ``wakeup.py``).

Each tick reads the object fresh, runs ``reconcile.tick`` off the event loop (registry
and platform calls block), and writes the status with a merge patch carrying the
``metadata.resourceVersion`` it read. A 409 means someone wrote in between (a user, or a
replica that lost leadership mid-tick): the tick is re-read and re-run, and its Events
are posted only once its status is written, so a conflict never doubles an action the
status records (the registry and platform actions themselves are idempotent).
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import kopf

from modeldeploy.operator import reconcile, telemetry
from modeldeploy.operator.api.schema import GROUP, PLURAL, VERSION
from modeldeploy.operator.executor import ExecutionFailed
from modeldeploy.operator.handlers.wakeup import sleep

log = logging.getLogger(__name__)
CONFLICT_RETRIES = 3
PERMANENT_BACKOFF_TICKS = 10  # a permanent failure waits for a change, or this many ticks


class Conflict(Exception):
    """The status kept changing under the tick (409 on every attempt)."""


@dataclass
class Outcome:
    """One written tick: the body it read, its result, and the Events it emitted."""

    body: dict[str, Any] | None  # None: the object is gone
    result: reconcile.TickResult | None = None
    events: list[tuple[str, str, str]] = field(default_factory=list)
    conflicts: int = 0


def tick_once(kube: Any, deps: reconcile.Deps, namespace: str, name: str) -> Outcome:
    """Read, tick and write one object (blocking: runs in a thread)."""
    from kubernetes.client.exceptions import ApiException

    for attempt in range(CONFLICT_RETRIES):
        try:
            body = kube.get_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, name)
        except ApiException as exc:
            if exc.status == 404:
                return Outcome(None)
            raise
        emitted: list[tuple[str, str, str]] = []
        held = dataclasses.replace(deps, emit=lambda *event, into=emitted: into.append(event))
        result = reconcile.tick(body, datetime.now(UTC), held)
        if result.patch:
            version = body["metadata"].get("resourceVersion")
            patch = {"metadata": {"resourceVersion": version}, "status": result.patch}
            try:
                kube.patch_namespaced_custom_object_status(
                    GROUP, VERSION, namespace, PLURAL, name, patch
                )
            except ApiException as exc:
                if exc.status == 409:
                    log.info("%s/%s changed during the tick: re-reading", namespace, name)
                    continue
                if exc.status == 404:
                    return Outcome(None)
                raise
        return Outcome(body, result, emitted, attempt)
    raise Conflict(f"the status changed during {CONFLICT_RETRIES} ticks in a row")


@kopf.daemon(GROUP, VERSION, PLURAL, initial_delay=0.5, cancellation_timeout=1.0)
async def rollout(meta: Any, memo: Any, logger: Any, stopped: Any, **_: Any) -> None:
    """Tick this object every ``tick_seconds``, or at once when woken."""
    namespace, name = str(meta.get("namespace", "")), str(meta.get("name", ""))
    settings = memo.settings.rollout
    wake = memo.wakers.event(namespace, name)
    running: asyncio.Future[Outcome] | None = None
    clock, due, planned = telemetry.TickClock(), time.monotonic(), 0.0
    try:
        while not stopped:
            wake.clear()
            if running is None:
                running = asyncio.ensure_future(
                    asyncio.to_thread(
                        _timed, clock, due, planned, memo.kube, memo.deps, namespace, name
                    )
                )
            delay = settings.tick_seconds
            try:
                outcome = await asyncio.wait_for(
                    asyncio.shield(running), settings.tick_timeout_seconds
                )
            except TimeoutError:
                # The thread goes on; the next tick waits for it, so ticks never overlap.
                logger.warning("tick still running after %.0f s", settings.tick_timeout_seconds)
                await sleep(wake, stopped, settings.tick_seconds)
                continue
            except ExecutionFailed as exc:
                running = None
                logger.error("tick failed: %s", exc)
                if not exc.transient:
                    delay = settings.tick_seconds * PERMANENT_BACKOFF_TICKS
            except Exception:
                running = None
                logger.exception("tick failed; the next one retries")
            else:
                running = None
                if outcome.body is None:
                    return  # deleted: kopf ends the daemon as well
                _written(memo, outcome)
            due, planned = time.monotonic() + delay, delay
            await sleep(wake, stopped, delay)
            due = min(due, time.monotonic())  # woken early: due now
    finally:
        memo.wakers.forget(namespace, name)
        telemetry.forget_state(namespace, name)  # deleted, or no longer this replica's


def _timed(clock: telemetry.TickClock, due: float, planned: float, *args: Any) -> Outcome:
    """``tick_once``, recording how late it started (the event loop and the thread pool
    are shared by every ModelDeployment: this is where an overloaded operator shows)."""
    clock.started(due, planned)
    return tick_once(*args)


def _written(memo: Any, outcome: Outcome) -> None:
    """After a written tick: its Events, the metrics, the registry watcher's hint."""
    body, result = outcome.body, outcome.result
    assert body is not None and result is not None
    meta = body["metadata"]
    namespace, name = meta.get("namespace", ""), meta.get("name", "")
    for kind, reason, message in outcome.events:
        kopf.event(body, type=kind, reason=reason, message=message)  # type: ignore[arg-type]
    telemetry.record_tick(namespace, name, result, outcome.conflicts)
    telemetry.record_state(namespace, name, body.get("spec"), list(result.status.conditions))
    if result.invalid:  # the InvalidSpec Event is posted once; the log repeats each tick
        log.error("%s/%s: %s", namespace, name, result.invalid)
    model = (body.get("spec") or {}).get("model") or {}
    if memo.events is not None and isinstance(model, dict) and model.get("name"):
        uri = model.get("registryUri") or memo.deps.default_registry_uri
        memo.events.seen(uri, str(model["name"]), namespace, name)


@kopf.on.update(GROUP, VERSION, PLURAL, field="spec")
@kopf.on.update(GROUP, VERSION, PLURAL, field="metadata.annotations")
async def changed(meta: Any, memo: Any, **_: Any) -> None:
    """A spec or annotation (manual control) change: tick now rather than at the interval."""
    memo.wakers.wake(str(meta.get("namespace", "")), str(meta.get("name", "")))
