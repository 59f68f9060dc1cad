"""kopf handlers: thin. They call ``reconcile.tick`` and translate its outcome.

create/resume/update and a timer all run the same tick (it is idempotent); a transient
failure is a ``TemporaryError`` (kopf retries), an invalid spec is reported in the status
and a ``PermanentError`` (nothing is applied until the spec changes).
"""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime
from typing import Any

import kopf

from modeldeploy.operator import reconcile, telemetry
from modeldeploy.operator.api.schema import GROUP, PLURAL, VERSION
from modeldeploy.operator.rollout.executor import ExecutionFailed
from modeldeploy.operator.settings import OperatorSettings

STATE: dict[str, Any] = {"deps": None, "settings": OperatorSettings(), "events": None}
# kopf reads a timer's interval when the handler is registered, so it comes from here.
TICK_SECONDS = OperatorSettings.from_env().rollout.tick_seconds


def configure(deps: reconcile.Deps, settings: OperatorSettings, events: Any = None) -> None:
    """Set what the handlers use (the startup hook does this; tests may too)."""
    STATE["deps"], STATE["settings"], STATE["events"] = deps, settings, events


def _run(body: Any, patch: kopf.Patch, logger: Any) -> None:
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
    if result.invalid:
        logger.error(result.invalid)


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
