"""Carry out the state machine's actions through a platform and the registry.

The only I/O of a tick besides reading. It lives outside the pure ``rollout`` package
(which imports only ``api``), so the machine never depends on platforms or registries.
Actions run in order and each is idempotent; the status is written only after all of
them succeeded, so a failure part-way repeats the whole tick (safely) instead of
recording something that did not happen.

After the actions, a tick with a canary re-asserts the weight the status wants
(``Platform.reassert_traffic``): the status is the only state, so a weight changed by
hand on the router lasts at most one tick, and each correction is counted
(``modeldeploy_operator_traffic_drift_corrections_total``) and reported as a Warning Event.
On a platform that publishes arms for the feedback joiner (``ArmsPublisher``: KServe), the
same once-a-tick call keeps the joiner's arm URLs current while a canary is undecided, and
withdraws them otherwise (best effort: pairing saves labels, it decides nothing), with the
golden-set prober's ``probe`` block when it should probe (``probing.py``; a stable version
without a golden set is said once in a ``ProberIdle`` Event).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from modeldeploy.operator import probing, registry_port, telemetry
from modeldeploy.operator.api.status import Status
from modeldeploy.operator.platforms.base import ArmsPublisher, Platform, Target
from modeldeploy.operator.rollout import actions as a
from modeldeploy.registry.base import RegistryClient


class ExecutionFailed(Exception):
    """An action failed; ``transient`` says whether the tick should simply be retried."""

    def __init__(self, message: str, *, transient: bool = True) -> None:
        super().__init__(message)
        self.transient = transient


@dataclass
class Executor:
    platform: Platform
    registry: RegistryClient
    emit: Callable[[str, str, str], None]  # (type Normal|Warning, reason, message)

    def run(
        self,
        target: Target,
        before: Status,
        after: Status,
        todo: Sequence[a.Action],
        *,
        reassert: bool = True,
    ) -> None:
        """Carry out ``todo`` in order, then (unless ``reassert`` is False) re-assert the
        weight ``after`` wants; a caller running actions one at a time re-asserts once, last."""
        for action in todo:
            try:
                self._one(target, before, after, action)
            except ExecutionFailed:
                raise
            except Exception as exc:
                transient = bool(getattr(exc, "transient", True))
                name = type(action).__name__
                raise ExecutionFailed(f"{name} failed: {exc}", transient=transient) from exc
        if not reassert:
            return
        try:
            self._reassert(target, after)
        except Exception as exc:
            transient = bool(getattr(exc, "transient", True))
            raise ExecutionFailed(f"ReassertTraffic failed: {exc}", transient=transient) from exc
        if isinstance(self.platform, ArmsPublisher):
            undecided = after.canary is not None and not after.canary.outcome
            canary = after.canary.ref if undecided and after.canary is not None else None
            probe = probing.plan(target, after.stable, after.canary, self.registry)
            if probe.note:
                self.emit("Normal", "ProberIdle", probe.note)
            self.platform.publish_arms(target, after.stable, canary, probe.block)

    def _reassert(self, target: Target, after: Status) -> None:
        """Set the canary's weight back to the status' if something else moved it.

        Only while a canary is progressing: ``Failed`` waits for a valid spec and touches
        nothing, and in ``RollingBack`` / ``Promoting`` the tick's own actions have just
        moved the traffic away from the weight the canary had.
        """
        if after.canary is None or after.phase != "Progressing":
            return
        wanted = after.canary.weight
        found = self.platform.reassert_traffic(target, wanted)
        if found is None:
            return
        telemetry.TRAFFIC_DRIFT.labels(target.namespace, target.name).inc()
        self.emit("Warning", "TrafficDrift", f"router weight was {found}%, set back to {wanted}%")

    def _one(self, target: Target, before: Status, after: Status, action: a.Action) -> None:
        stable = before.stable or after.stable
        canary = after.canary or before.canary
        spec = target.spec
        match action:
            case a.EnsureStable(ref=ref):
                self.platform.ensure(target, ref)
            case a.SetCanary(ref=ref, weight=weight):
                assert stable is not None, "a canary needs a stable version"
                self.platform.set_canary(target, stable, ref, weight)
            case a.SetTraffic(weight=weight):
                assert stable is not None and canary is not None
                self.platform.set_traffic(target, stable, canary.ref, weight)
            case a.PromoteOnPlatform(ref=ref):
                self.platform.promote(target, ref)
            case a.RemoveCanary():
                assert stable is not None
                self.platform.ensure(target, stable)
            case a.PromoteInRegistry(version=version, reason=reason):
                registry_port.promote(self.registry, spec, version, reason)
            case a.RejectInRegistry(version=version, reason=reason):
                registry_port.reject(self.registry, spec, version, reason)
            case a.EmitEvent(reason=reason, message=message, kind=kind):
                self.emit(kind, reason, message)
