"""kopf handlers: thin. They call ``reconcile.tick`` and translate its outcome.

create/resume/update and a timer all run the same tick (it is idempotent); a transient
failure is a ``TemporaryError`` (kopf retries), an invalid spec is reported in the status
and a ``PermanentError`` (nothing is applied until the spec changes).

kopf runs the timer and the change handlers of one object concurrently, each with its own
snapshot of the body, and applies a handler's status patch only after it returns. So ticks
of one object are serialised, and a tick whose body does not yet show the status this
process last wrote is skipped (``_Fence``): otherwise two ticks could both carry out the
same persisted decision (two promotions). The fence is only a guard, never state: it
expires, and a restarted operator starts without one and reads the status.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import threading
import time
from datetime import UTC, datetime
from typing import Any

import kopf

from modeldeploy.operator import reconcile, telemetry
from modeldeploy.operator.api.schema import GROUP, PLURAL, VERSION
from modeldeploy.operator.executor import ExecutionFailed
from modeldeploy.operator.settings import OperatorSettings

log = logging.getLogger(__name__)
STATE: dict[str, Any] = {"deps": None, "settings": OperatorSettings(), "events": None}
# kopf reads a timer's interval when the handler is registered, so it comes from here.
TICK_SECONDS = OperatorSettings.from_env().rollout.tick_seconds


def configure(deps: reconcile.Deps, settings: OperatorSettings, events: Any = None) -> None:
    """Set what the handlers use (the startup hook does this; tests may too)."""
    STATE["deps"], STATE["settings"], STATE["events"] = deps, settings, events


class _Fence:
    """Per object: one tick at a time, and no tick on a body older than our last write."""

    def __init__(self, expire_seconds: float = 60.0) -> None:
        self.expire_seconds = expire_seconds
        self.guard = threading.Lock()
        self.locks: dict[str, threading.Lock] = {}
        self.written: dict[str, tuple[float, dict[str, Any]]] = {}

    def lock(self, key: str) -> threading.Lock:
        with self.guard:
            return self.locks.setdefault(key, threading.Lock())

    def stale(self, key: str, status: dict[str, Any]) -> bool:
        """True when ``status`` does not show the last patch written for ``key`` yet."""
        at, patch = self.written.get(key, (0.0, {}))
        if not patch or time.monotonic() - at > self.expire_seconds:
            return False
        if _merged(status, patch) != _normal(status):
            return True
        del self.written[key]
        return False

    def wrote(self, key: str, patch: dict[str, Any]) -> None:
        self.written[key] = (time.monotonic(), _normal(patch))


def _normal(value: Any) -> Any:
    return json.loads(json.dumps(value))


def _merged(old: Any, patch: Any) -> Any:
    """``old`` after the JSON merge patch ``patch`` (RFC 7386)."""
    if not isinstance(patch, dict):
        return _normal(patch)
    out = dict(_normal(old)) if isinstance(old, dict) else {}
    for key, value in patch.items():
        if value is None:
            out.pop(key, None)
        else:
            out[key] = _merged(out.get(key), value)
    return out


FENCE = _Fence()


def _run(body: Any, patch: kopf.Patch, logger: Any) -> None:
    meta = body.metadata
    key = str(meta.get("uid") or f"{meta.get('namespace')}/{meta.get('name')}")
    with FENCE.lock(key):
        status = _plain(dict(body.status))
        if FENCE.stale(key, status):
            logger.debug("skipping a tick on a body older than the last status written")
            return
        written = _tick(body, patch, logger)
        if written:
            FENCE.wrote(key, written)


def _tick(body: Any, patch: kopf.Patch, logger: Any) -> dict[str, Any] | None:
    deps: reconcile.Deps = STATE["deps"]

    def emit(kind: str, reason: str, message: str) -> None:
        kopf.event(body, type=kind, reason=reason, message=message)

    deps = dataclasses.replace(deps, emit=emit)
    plain = {"metadata": dict(body.metadata), "spec": dict(body.spec), "status": dict(body.status)}
    plain = _plain(plain)
    try:
        result = reconcile.tick(plain, datetime.now(UTC), deps)
    except ExecutionFailed as exc:
        if exc.transient:
            raise kopf.TemporaryError(str(exc), delay=10) from exc
        raise kopf.PermanentError(str(exc)) from exc
    _seen(plain)
    telemetry.record_tick(body.metadata.get("namespace", ""), body.metadata.get("name", ""), result)
    if result.patch:
        patch.status.update(result.patch)
    if result.invalid:  # the InvalidSpec Event is posted once; the log repeats each tick
        log.error("%s: %s", body.metadata.get("name", ""), result.invalid)
    return result.patch


def _seen(body: dict[str, Any]) -> None:
    """Tell the registry watcher which model this resource follows (a hint only)."""
    events, deps = STATE["events"], STATE["deps"]
    model = (body["spec"].get("model") or {}) if isinstance(body["spec"], dict) else {}
    if events is None or not model.get("name"):
        return
    uri = model.get("registryUri") or deps.default_registry_uri
    meta = body["metadata"]
    events.seen(uri, str(model["name"]), meta.get("namespace", ""), meta.get("name", ""))


def _plain(value: Any) -> Any:
    if isinstance(value, dict) or hasattr(value, "items"):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


@kopf.on.create(GROUP, VERSION, PLURAL)
@kopf.on.resume(GROUP, VERSION, PLURAL)
@kopf.on.update(GROUP, VERSION, PLURAL, field="spec")
@kopf.on.update(GROUP, VERSION, PLURAL, field="metadata.annotations")
def ensure(body: Any, patch: kopf.Patch, logger: Any, **_: Any) -> None:
    _run(body, patch, logger)


@kopf.timer(GROUP, VERSION, PLURAL, interval=TICK_SECONDS, initial_delay=1.0, sharp=True)
def rollout_tick(body: Any, patch: kopf.Patch, logger: Any, **_: Any) -> None:
    _run(body, patch, logger)
