"""The ``local`` platform: real predictor processes and the router, on one machine.

It lives in the ``local`` package, beside the process helpers and the state directory it
uses, so ``platforms`` (the protocol and the cluster platforms) never imports ``local``.

The same contract as KServe (``platforms.base.Platform``), carried out with processes:

- stable and canary are each one ``python -m modeldeploy.serving`` process that loads its
  version through the registry's hash-verified fetch (``--registry-uri/--model/--version``),
  labelled ``--deployment NAME --role stable|canary --model-version V`` so the scrape
  metrics provider can tell the arms apart;
- one ``python -m modeldeploy.serving.router`` on a fixed port fronts them. Weight changes
  are ``PUT /router/weights``; a change of arms (a new canary, a promotion, a rollback)
  starts the router again on the same port with the new arms;
- promotion swaps roles: the promoted version starts as the new stable process (its
  metrics must say ``role="stable"``), the router moves to it, then the old stable and
  the canary stop. Rollback stops the canary.

Labels and weights need credentials: ``local apply`` writes ``<state>/auth/label-token``
and ``<state>/auth/control-token`` (mode 0600, see ``token_files``); when both exist, every
predictor and the router get them (``--label-token-file``/``--control-token-file``) and the
platform's own ``/router/*`` calls carry the control token.

Every method is idempotent and compares the wanted state with the process table, which
is kept in the state directory: a restarted ``local apply`` adopts processes that are
alive, healthy and serving the wanted version, and replaces the others.
"""

from __future__ import annotations

import json
import sys
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from modeldeploy.operator.api.status import VersionRef
from modeldeploy.operator.local import procs
from modeldeploy.operator.local.procs import ProcRecord
from modeldeploy.operator.local.state import StateDir
from modeldeploy.operator.platforms.base import PlatformError, Target
from modeldeploy.registry.uris import redact_uri
from modeldeploy.serving.auth import CONTROL_TOKEN_FILE, LABEL_TOKEN_FILE, read_tokens
from modeldeploy.serving.contract.args import (
    DEFAULT_PAIRED_SHARE,
    PREDICTOR_MODULE,
    PredictorOptions,
    predictor_args,
)

STABLE, CANARY, ROUTER = "stable", "canary", "router"


@dataclass
class LocalOptions:
    """How local mode starts processes (all optional)."""

    router_port: int = 0  # 0: pick a free port once and keep it in the state directory
    python: str = sys.executable
    threads: int = 1  # torch threads per predictor (two predictors share the machine)
    start_timeout_s: float = 300.0
    predictor_args: Sequence[str] = ()
    progress: Callable[[str], None] = field(default=lambda line: None)


def token_files(state: StateDir) -> tuple[Path, Path]:
    """Local mode's label and control token files: ``<state>/auth/{label,control}-token``."""
    root = state.root / "auth"
    return root / LABEL_TOKEN_FILE, root / CONTROL_TOKEN_FILE


def _http_json(
    method: str,
    url: str,
    body: Mapping[str, Any] | None = None,
    headers: Mapping[str, str] | None = None,
) -> Any:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(
        url,
        data=data,
        method=method,
        headers={"Content-Type": "application/json", **(headers or {})},
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read() or b"null")


class LocalPlatform:
    """Serves one or more ModelDeployments as local processes (see the module docstring)."""

    def __init__(self, state: StateDir, options: LocalOptions | None = None) -> None:
        self.state = state
        self.options = options or LocalOptions()
        self.table: dict[str, dict[str, ProcRecord]] = {
            key: {role: ProcRecord.from_dict(rec) for role, rec in arms.items()}
            for key, arms in state.load_processes().items()
        }

    # --- the process table ----------------------------------------------------------

    def _arms(self, target: Target) -> dict[str, ProcRecord]:
        return self.table.setdefault(target.name, {})

    def _save(self) -> None:
        self.state.save_processes(
            {
                key: {role: rec.to_dict() for role, rec in arms.items()}
                for key, arms in self.table.items()
            }
        )

    def router_url(self, target: Target | str) -> str | None:
        name = target if isinstance(target, str) else target.name
        rec = self.table.get(name, {}).get(ROUTER)
        return rec.url if rec is not None else None

    def _router_port(self, target: Target) -> int:
        rec = self._arms(target).get(ROUTER)
        if rec is not None:
            return rec.port
        return self.options.router_port or procs.free_port()

    # --- credentials ----------------------------------------------------------------

    def _auth_files(self) -> tuple[Path, Path] | tuple[None, None]:
        """The (label, control) token files when ``local apply`` wrote both, else Nones.

        Without them the processes run open (they warn): only a state directory made by
        hand, or by an older version, lacks them.
        """
        files = token_files(self.state)
        return files if all(path.exists() for path in files) else (None, None)

    def _control_headers(self) -> dict[str, str]:
        """``Authorization: Bearer <control token>`` for ``/router/*`` (empty when open)."""
        control_file = self._auth_files()[1]
        if control_file is None:
            return {}
        try:
            token = read_tokens(control_file)[0].decode()
        except ValueError as exc:  # AuthConfigError: a damaged file is a clear refusal
            raise PlatformError(str(exc), transient=False) from exc
        return {"Authorization": "Bearer " + token}

    # --- processes ------------------------------------------------------------------

    def _healthy(self, rec: ProcRecord | None, path: str) -> bool:
        return rec is not None and rec.alive() and procs.http_ok(rec.url + path)

    def _predictor(self, target: Target, role: str, ref: VersionRef) -> ProcRecord:
        """The running predictor for (role, version), started (or adopted) as needed."""
        arms = self._arms(target)
        rec = arms.get(role)
        if (
            rec is not None
            and rec.labels.get("version") == ref.version
            and self._healthy(rec, "/v2/health/ready")
        ):
            return rec
        if not target.registry_uri:
            raise PlatformError("no registry URI: set spec.model.registryUri or --registry-uri")
        port = procs.free_port()
        model = target.spec.model.name
        label_file, control_file = self._auth_files()
        options = PredictorOptions.from_registry(
            redact_uri(target.registry_uri),
            model,
            ref.version,
            target.name,
            role,
            fetch_cache=self.state.fetch_cache,
            http_port=port,
            grpc_port=0,
            threads=self.options.threads,
            label_token_file=label_file,
            control_token_file=control_file,
        )
        argv = [
            self.options.python,
            "-m",
            PREDICTOR_MODULE,
            *predictor_args(options),
            *self.options.predictor_args,
        ]
        self.options.progress(f"starting {role} predictor for version {ref.version} on :{port}")
        try:
            new = procs.start(
                f"{target.name}-{role}-v{ref.version}",
                argv,
                port=port,
                log_dir=self.state.logs,
                ready=lambda: procs.http_ok(f"http://127.0.0.1:{port}/v2/health/ready"),
                timeout=self.options.start_timeout_s,
                labels={"role": role, "version": ref.version, "digest": ref.digest},
                env={"MODELDEPLOY_EXPECTED_DIGEST": ref.digest} if ref.digest else None,
                progress=self.options.progress,
            )
        except procs.StartFailed as exc:
            raise PlatformError(str(exc)) from exc
        self.options.progress(f"{role} predictor for version {ref.version} is ready")
        return new

    def _router(
        self,
        target: Target,
        stable: ProcRecord,
        canary: ProcRecord | None,
        weight: int,
    ) -> ProcRecord:
        """The router with exactly these arms (restarted on the same port if they differ)."""
        arms = self._arms(target)
        rec = arms.get(ROUTER)
        share = round(DEFAULT_PAIRED_SHARE * 100, 3)  # the router's option is in percent
        wanted = {"stable": stable.url, "canary": canary.url if canary else ""}
        if rec is not None and self._healthy(rec, "/healthz"):
            have = {"stable": rec.labels.get("stable"), "canary": rec.labels.get("canary") or ""}
            if have == wanted:
                if canary is not None:
                    self._put_weight(rec, weight, share)
                return rec
        port = self._router_port(target)
        if rec is not None:
            procs.stop(rec)
        argv = [
            self.options.python,
            "-m",
            "modeldeploy.serving.router",
            "--deployment",
            target.name,
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--stable",
            stable.url,
        ]
        if canary is not None:
            argv += ["--canary", canary.url, "--weight", str(weight), "--paired-share", str(share)]
        label_file, control_file = self._auth_files()
        if label_file is not None and control_file is not None:
            argv += [
                "--label-token-file",
                str(label_file),
                "--control-token-file",
                str(control_file),
            ]
        try:
            new = procs.start(
                f"{target.name}-router",
                argv,
                port=port,
                log_dir=self.state.logs,
                ready=lambda: procs.http_ok(f"http://127.0.0.1:{port}/healthz"),
                timeout=min(self.options.start_timeout_s, 120.0),
                labels=wanted,
                progress=self.options.progress,
            )
        except procs.StartFailed as exc:
            raise PlatformError(str(exc)) from exc
        arms[ROUTER] = new
        self._save()
        return new

    def _put_weight(self, router: ProcRecord, weight: int, share: float | None = None) -> None:
        body: dict[str, float] = {"canary": float(weight)}
        if share is not None:
            body["paired_share"] = share
        try:
            _http_json("PUT", router.url + "/router/weights", body, self._control_headers())
        except OSError as exc:
            raise PlatformError(f"cannot set the router weight: {exc}") from exc

    def _retire(self, target: Target, role: str) -> None:
        rec = self._arms(target).pop(role, None)
        if rec is not None:
            procs.stop(rec)
            self.options.progress(f"stopped {role} predictor (version {rec.labels.get('version')})")
        self._save()

    # --- the Platform contract ------------------------------------------------------

    def ensure(self, target: Target, stable: VersionRef) -> None:
        old = self._arms(target).get(STABLE)
        new = self._predictor(target, STABLE, stable)
        self._arms(target)[STABLE] = new
        self._save()
        self._router(target, new, None, 0)
        if old is not None and old is not new:
            procs.stop(old)
        self._retire(target, CANARY)

    def set_canary(
        self, target: Target, stable: VersionRef, canary: VersionRef, weight: int
    ) -> None:
        arms = self._arms(target)
        old_stable = arms.get(STABLE)
        stable_rec = self._predictor(target, STABLE, stable)
        arms[STABLE] = stable_rec
        self._save()
        old_canary = arms.get(CANARY)
        canary_rec = self._predictor(target, CANARY, canary)
        arms[CANARY] = canary_rec
        self._save()
        self._router(target, stable_rec, canary_rec, weight)
        for old in (old_stable, old_canary):
            if old is not None and old not in (stable_rec, canary_rec):
                procs.stop(old)
        self.options.progress(f"canary version {canary.version} serves {weight}% of traffic")

    def set_traffic(
        self, target: Target, stable: VersionRef, canary: VersionRef, weight: int
    ) -> None:
        arms = self._arms(target)
        router = arms.get(ROUTER)
        if (
            router is None
            or arms.get(CANARY) is None
            or arms[CANARY].labels.get("version") != canary.version
            or not self._healthy(router, "/healthz")
        ):
            self.set_canary(target, stable, canary, weight)
            return
        self._put_weight(router, weight)
        self.options.progress(f"router: canary version {canary.version} at {weight}%")

    def read_traffic(self, target: Target) -> int | None:
        router = self._arms(target).get(ROUTER)
        if router is None or self._arms(target).get(CANARY) is None:
            return None
        try:
            weights = _http_json(
                "GET", router.url + "/router/weights", None, self._control_headers()
            )
        except OSError:
            return None
        return round(float(weights["canary"]))

    def reassert_traffic(self, target: Target, weight: int) -> int | None:
        """Put the router back on ``weight`` if something else moved it; the weight found then.

        The executor calls this on every tick, so a weight changed by hand lasts at most one
        tick; a non-None answer is a drift to record (a counter and an Event "router weight
        was N%, set back to M%"). None: no router with a canary, or nothing to correct.
        """
        found = self.read_traffic(target)
        router = self._arms(target).get(ROUTER)
        if found is None or found == weight or router is None:
            return None
        self._put_weight(router, weight)
        return found

    def is_ready(self, target: Target) -> bool:
        arms = self._arms(target)
        if STABLE not in arms or ROUTER not in arms:
            return False
        return all(
            self._healthy(rec, "/healthz" if role == ROUTER else "/v2/health/ready")
            for role, rec in arms.items()
        )

    def promote(self, target: Target, ref: VersionRef) -> None:
        """Swap roles: ``ref`` starts as the stable process, then the old arms stop."""
        arms = self._arms(target)
        old_stable, old_canary = arms.get(STABLE), arms.get(CANARY)
        if old_stable is not None and old_stable.labels.get("version") == ref.version:
            new = old_stable if self._healthy(old_stable, "/v2/health/ready") else None
        else:
            new = None
        if new is None:
            self.options.progress(f"promoting version {ref.version}: starting it as stable")
            new = self._predictor(target, STABLE, ref)
        arms[STABLE] = new
        self._save()
        self._router(target, new, None, 0)
        for old in (old_stable, old_canary):
            if old is not None and old is not new:
                procs.stop(old)
        arms.pop(CANARY, None)
        self._save()
        self.options.progress(f"version {ref.version} is stable and serves all traffic")

    def clean_up(self, target: Target) -> None:
        self.stop_all(target.name)

    # --- local extras ---------------------------------------------------------------

    def stop_all(self, name: str | None = None) -> None:
        """Stop every process of ``name`` (or of all deployments) and forget them."""
        for key in [name] if name else list(self.table):
            arms = self.table.pop(key, {}) if key else {}
            for role in (ROUTER, CANARY, STABLE):
                rec = arms.get(role)
                if rec is not None:
                    procs.stop(rec)
        self._save()

    def metrics_endpoints(self, target: Target) -> list[str]:
        """``/metrics`` of every serving process of ``target``: predictors and router."""
        arms = self.table.get(target.name, {})
        return [arms[r].url + "/metrics" for r in (STABLE, CANARY, ROUTER) if r in arms]

    def logs_dir(self) -> Path:
        return self.state.logs
