"""The local reconcile loop: the cluster operator's ``reconcile.tick``, fed from a state file.

Per tick: read ``state.json`` (metadata, spec, status), run the same ``tick`` the kopf
handlers run (parse_spec, registry read, ``observer.MetricsWindows``, analysis, the pure
state machine, the executor with the ``local`` platform), merge the status patch, and
write the file atomically. Only the ``Deps`` differ from the cluster: the platform is
``LocalPlatform``, whose ``metrics_endpoints`` are the predictors' and the router's
``/metrics``, read by the same provider (``observer.default_provider_for``). The window
baseline is ``status.metricsBaseline``, as in the cluster, so a restart keeps counting
the same window.

Labels and weights need a credential here too: the operator writes the state directory's
label and control token files once (``auth.write_token_file``, mode 0600, kept on later
runs), and the platform gives them to every process it starts.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from modeldeploy.operator import reconcile
from modeldeploy.operator.analysis.observations import Observations
from modeldeploy.operator.analysis.verdict import Verdict
from modeldeploy.operator.api.status import Status
from modeldeploy.operator.api.types import ModelDeploymentSpec, SpecError, parse_spec
from modeldeploy.operator.executor import ExecutionFailed
from modeldeploy.operator.local.platform import LocalOptions, LocalPlatform, token_files
from modeldeploy.operator.local.state import StateDir, add_event, merge_resource
from modeldeploy.operator.observer import MetricsWindows, default_provider_for
from modeldeploy.operator.platforms.base import Target
from modeldeploy.operator.rollout import machine
from modeldeploy.operator.settings import bound_mlflow_client_env
from modeldeploy.registry.base import RegistryClient
from modeldeploy.serving.auth import write_token_file


def merge_patch(old: Mapping[str, Any], patch: Mapping[str, Any]) -> dict[str, Any]:
    """A top-level JSON merge patch, as the API server applies it: None removes a key."""
    merged = {**old, **patch}
    return {k: v for k, v in merged.items() if v is not None}


@dataclass
class TickRecord:
    """What one local tick did, for progress output and the demo's timeline."""

    time: float
    status: Status
    changed: bool
    observations: Observations | None = None  # the window's, when an analysis ran
    verdict: Verdict | None = None  # the checks' outcome, when an analysis ran
    error: str = ""
    before: Status | None = None  # the status the tick started from (the analysed window's)
    decision: str = ""  # what the machine made of the verdict (lastAnalysis.decision)


@dataclass
class LocalOperator:
    """One ModelDeployment run locally; ``apply`` then ``run`` (or ``tick`` in a loop)."""

    state: StateDir
    registry_uri: str = ""
    options: LocalOptions = field(default_factory=LocalOptions)
    out: Callable[[str], None] = print
    on_tick: Callable[[TickRecord], None] = field(default=lambda record: None)

    def __post_init__(self) -> None:
        # Credentials in the URI move to MLFLOW_TRACKING_USERNAME/PASSWORD (predictors inherit
        # them); only the clean URI reaches state.json, logs and predictor arguments.
        self.registry_uri = _without_credentials(self.registry_uri)
        bound_mlflow_client_env()  # an unreachable MLflow fails a tick in seconds, not minutes
        self.options.progress = self.out
        self.platform = LocalPlatform(self.state, self.options)
        self._clients: dict[str, RegistryClient] = {}
        self.deps = reconcile.Deps(
            platform=self.platform,
            registry_for=self._registry_for,
            windows=MetricsWindows(
                default_provider_for(self.platform.metrics_endpoints),
                latency_spans_steps=self.platform.arms_serve_the_same_requests,
            ),
            emit=self._emit,
            default_registry_uri=self.registry_uri,
        )
        self.data: dict[str, Any] = self.state.load()

    # --- resource -------------------------------------------------------------------

    def apply(self, manifest: Mapping[str, Any]) -> None:
        """Record ``manifest`` (metadata + spec) as the wanted state; the status is kept."""
        if manifest.get("kind", "ModelDeployment") != "ModelDeployment":
            raise SpecError([f"kind: expected ModelDeployment, got {manifest.get('kind')}"])
        if not (manifest.get("metadata") or {}).get("name"):
            raise SpecError(["metadata.name: required"])
        manifest = dict(manifest)
        model = dict((manifest.get("spec") or {}).get("model") or {})
        if model.get("registryUri"):
            model["registryUri"] = _without_credentials(str(model["registryUri"]))
            manifest["spec"] = {**dict(manifest.get("spec") or {}), "model": model}
        if self.registry_uri:
            spec = dict(manifest.get("spec") or {})
            spec["model"] = {**dict(spec.get("model") or {}), "registryUri": self.registry_uri}
            manifest["spec"] = spec
        parse_spec(manifest.get("spec"))  # refuse an invalid spec before anything runs
        self.data = merge_resource(self.data, manifest)
        self.state.save(self.data)
        for path in token_files(self.state):  # before any process starts; kept when present
            write_token_file(path)

    @property
    def name(self) -> str:
        return str((self.data.get("metadata") or {}).get("name", ""))

    @property
    def status(self) -> Status:
        return Status.from_dict(self.data.get("status"))

    def spec(self) -> ModelDeploymentSpec:
        return parse_spec(self.data.get("spec"))

    def target(self) -> Target:
        return reconcile.target_of(self.data, self.spec(), self.registry_uri)

    def router_url(self) -> str | None:
        return self.platform.router_url(self.name)

    # --- deps -----------------------------------------------------------------------

    def _registry_for(self, spec: ModelDeploymentSpec) -> RegistryClient:
        from modeldeploy.registry.rest_client import operator_registry

        uri = spec.model.registry_uri or self.registry_uri
        if uri not in self._clients:
            self._clients[uri] = operator_registry(uri)
        return self._clients[uri]

    def _emit(self, kind: str, reason: str, message: str) -> None:
        stamp = machine.iso(datetime.now(UTC))
        event = {"time": stamp, "type": kind, "reason": reason, "message": message}
        self.data["events"] = add_event(list(self.data.get("events") or []), event)
        mark = "!" if kind == "Warning" else "*"
        self.out(f"{mark} {reason}: {message}")

    # --- the loop -------------------------------------------------------------------

    def restore(self) -> None:
        """Bring the processes back to what the status says (after a restart)."""
        status = self.status
        if status.stable is None or status.phase in ("Initializing", "Failed"):
            return
        target = self.target()
        if self.platform.is_ready(target) and (
            status.canary is None or self.platform.read_traffic(target) == status.canary.weight
        ):
            return
        self.out(f"restoring the processes of {self.name} from the state file ({status.phase})")
        if status.canary is not None:
            self.platform.set_canary(target, status.stable, status.canary.ref, status.canary.weight)
        else:
            self.platform.ensure(target, status.stable)

    def tick(self, now: datetime | None = None) -> TickRecord:
        before = self.status
        try:
            result = reconcile.tick(self.data, now or datetime.now(UTC), self.deps)
        except ExecutionFailed as exc:
            self.out(f"! tick failed ({'will retry' if exc.transient else 'permanent'}): {exc}")
            self.state.save(self.data)
            record = TickRecord(time.time(), before, False, error=str(exc), before=before)
            self.on_tick(record)
            return record
        if result.invalid:
            self.out(f"! invalid spec: {result.invalid}")
        if result.patch:
            self.data["status"] = merge_patch(self.data.get("status") or {}, result.patch)
        self.state.save(self.data)
        if result.status.message != before.message and result.status.message:
            self.out(f"  [{result.status.phase}] {result.status.message}")
        analysis = result.analysis
        record = TickRecord(
            time.time(),
            result.status,
            bool(result.patch),
            analysis.observations,
            analysis.verdict,
            before=before,
            decision=str(result.status.last_analysis.get("decision", ""))
            if analysis.verdict is not None
            else "",
        )
        self.on_tick(record)
        return record

    def run(
        self,
        *,
        tick_seconds: float = 2.0,
        max_seconds: float | None = None,
        until: Callable[[LocalOperator], bool] | None = None,
        should_stop: Callable[[], bool] = lambda: False,
    ) -> Status:
        """Tick every ``tick_seconds`` until ``until(self)``, ``should_stop()`` or the limit."""
        started = time.monotonic()
        self.restore()
        while not should_stop():
            began = time.monotonic()
            self.tick()
            if until is not None and until(self):
                break
            if max_seconds is not None and time.monotonic() - started >= max_seconds:
                break
            pause = tick_seconds - (time.monotonic() - began)
            deadline = time.monotonic() + max(pause, 0.0)
            while time.monotonic() < deadline and not should_stop():
                time.sleep(min(0.2, max(deadline - time.monotonic(), 0.0)))
        return self.status

    def shutdown(self) -> None:
        """Stop this deployment's processes (the state file keeps the status)."""
        self.platform.stop_all(self.name or None)


def _without_credentials(uri: str) -> str:
    """``uri`` minus ``user:pass@``; the credentials go into this process's environment."""
    import os

    from modeldeploy.registry.uris import split_credentials

    clean, credentials = split_credentials(uri)
    if credentials is not None:
        os.environ.update(credentials.environ())
    return clean
