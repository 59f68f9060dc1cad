"""The real router, logging every upstream call for :mod:`.fairness` (a benchmark aid only).

Run as ``python -m modeldeploy.tools.bench.serving.fairness_router ROUTER-ARGS``. Each call
an arm gets is appended to ``$MODELDEPLOY_FAIRNESS_LOG`` as ``start role purpose seconds id``
(start on the monotonic clock, which every process on the machine shares; ``id`` the
request's, so the two calls of a score-both pair can be matched). With
``MODELDEPLOY_FAIRNESS_NO_PACING`` set, re-scores go out at once, as before the router
paced them.
"""

from __future__ import annotations

import contextvars
import os
import runpy
import time
from typing import Any

from modeldeploy.serving.router import app, metrics, pairing

_PURPOSE: contextvars.ContextVar[str] = contextvars.ContextVar("purpose", default="?")


def install(log_path: str, pacing: bool) -> None:
    log = open(log_path, "a", buffering=1)  # noqa: SIM115 - open for the process' life
    routed, forward = metrics.RouterMetrics.routed, app.Router._forward

    def routed_and_noted(self: Any, role: str, purpose: str, protocol: str) -> None:
        _PURPOSE.set(purpose)  # the forward task is created next, in this context
        routed(self, role, purpose, protocol)

    async def timed(self: Any, role: str, *args: Any, **kwargs: Any) -> Any:
        started = time.monotonic()
        answer = await forward(self, role, *args, **kwargs)
        request_id = args[3] if len(args) > 3 else kwargs.get("request_id", "?")
        took = time.monotonic() - started
        log.write(f"{started:.6f} {role} {_PURPOSE.get()} {took:.6f} {request_id}\n")
        return answer

    metrics.RouterMetrics.routed = routed_and_noted  # type: ignore[method-assign]
    app.Router._forward = timed  # type: ignore[method-assign]
    if not pacing:
        pairing.RescorePacer.reserve = lambda self, role: 0.0  # type: ignore[method-assign]


if __name__ == "__main__":
    install(
        os.environ["MODELDEPLOY_FAIRNESS_LOG"], not os.environ.get("MODELDEPLOY_FAIRNESS_NO_PACING")
    )
    runpy.run_module("modeldeploy.serving.router", run_name="__main__")
