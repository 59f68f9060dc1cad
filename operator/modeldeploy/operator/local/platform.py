"""The ``local`` platform: real predictor processes and the router, on one machine.

It lives in the ``local`` package, beside the process helpers and the state directory it
uses, so ``platforms`` (the protocol and the cluster platforms) never imports ``local``.

The same contract as KServe (``platforms.base.Platform``), carried out with processes:

- stable and canary are each one ``python -m modeldeploy.serving`` process that loads its
  version through the registry's hash-verified fetch (``--registry-uri/--model/--version``),
  labelled ``--deployment NAME --role stable|canary --model-version V`` so the scrape
  metrics provider can tell the arms apart;
- one ``python -m modeldeploy.serving.router`` on a fixed port fronts them, in score-both
  mode (both arms score every request while the canary has weight). Weight changes
  are ``PUT /router/weights``; a change of arms (a new canary, a promotion, a rollback) is
  ``PUT /router/arms``: the router keeps running, drains requests still in flight to a
  removed arm, and only then is that arm's process stopped (no request fails);
- one ``python -m modeldeploy.serving.joiner`` per deployment counts labels, as on KServe:
  the router posts it KServe-format inference-logger events and passes it the labels
  (``--joiner-url``/``--joiner-events-url``), the predictors run ``--labels-at-joiner``, and
  the platform writes its arms file (``<state>/joiner/<name>/``, the operator's format) so it
  pairs on label; a dead joiner is reported in ``health`` (the analysis holds) and started
  again by the re-apply that follows;
- one ``python -m modeldeploy.serving.prober --arms-file <the same folder>`` per deployment
  while a canary is undecided and the operator asks for probes (``publish_arms`` with a
  ``probe`` block: ``spec.rollout.prober.enabled`` and a golden set on the stable version,
  ``operator/probing.py``). The block goes into the arms file, with the schedule's start
  kept in ``<state>/prober/`` (``_probe_anchor``); the prober reads it, and the stable
  version's golden set from the registry. It is recorded like the others,
  started again on the next tick if it died (its schedule never re-sends an example,
  ``serving/prober/schedule.py``) and stopped when the rollout is decided. Its /metrics
  (``source="probe"`` labels and pairs) is one of ``metrics_endpoints``;
- with ``pin_cpus`` (``--pin-cpus``), each arm's predictor runs on CPUs of its own
  (``threads`` each: stable on the first the operator may use, the canary on the next;
  ``local/cpus.py``), as each pod has its own; the router, joiner and prober float;
- the router, joiner and prober run ``helper_niceness`` nice steps (default 10) below the
  predictors, their session's autogroup included (``local/priority.py``): a predictor with
  work gets the CPU first, as a pod's neighbours do not take its cores;
- everything listens on 127.0.0.1 only (predictors get ``--host 127.0.0.1``);
- a child is written to ``processes.json`` as ``<role>.starting`` the moment it exists,
  before the wait for its readiness, so an operator killed meanwhile leaves nothing
  unrecorded: the next start adopts it (same version) or stops it, and ``local down``
  stops every recorded process, then any predictor, router or joiner whose arguments name
  this state directory (``--fetch-cache``, ``--owner``, ``--arms-file``);
- ``health`` asks each predictor whether its model is ready (``/v2/models/NAME/ready``);
  an exited process is ``gone``, with its exit code and last output line;
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
import os
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from modeldeploy.operator.api.status import ArmHealth, VersionRef
from modeldeploy.operator.local import procs
from modeldeploy.operator.local.cpus import arm_cpus, usable_cpus
from modeldeploy.operator.local.priority import HELPER_NICENESS
from modeldeploy.operator.local.procs import ProcRecord
from modeldeploy.operator.local.state import StateDir
from modeldeploy.operator.platforms.base import PlatformError, Target
from modeldeploy.registry.uris import redact_uri
from modeldeploy.serving.auth import CONTROL_TOKEN_FILE, LABEL_TOKEN_FILE, read_tokens
from modeldeploy.serving.contract.args import (
    DEFAULT_PAIRED_SHARE,
    LOOPBACK,
    PREDICTOR_MODULE,
    PredictorOptions,
    predictor_args,
)
from modeldeploy.serving.contract.joiner import arms_entry, arms_key

STABLE, CANARY, ROUTER, JOINER, PROBER = "stable", "canary", "router", "joiner", "prober"
SCORE_BOTH = "score_both"
"""The router record's label saying it runs ``--score-both`` (one from before is restarted)."""
ROUTER_MODULE = "modeldeploy.serving.router"
JOINER_MODULE = "modeldeploy.serving.joiner"
PROBER_MODULE = "modeldeploy.serving.prober"
ARMS_NAMESPACE = "local"  # the arms file's key, as the KServe platform's is namespace.name
STARTING = ".starting"  # suffix of a child recorded before it is ready


@dataclass
class LocalOptions:
    """How local mode starts processes (all optional)."""

    router_port: int = 0  # 0: pick a free port once and keep it in the state directory
    python: str = sys.executable
    threads: int = 1  # torch threads per predictor (two predictors share the machine)
    pin_cpus: bool = False
    """Each arm's predictor on CPUs of its own, ``threads`` of them (``local/cpus.py``): stable
    on the first, the canary on the next, as pods have theirs. Off by default: on a shared
    2-core machine equal arms' P99s scattered wider pinned (docs/local-mode.md);
    off, or with too few CPUs, every process floats."""
    helper_niceness: int = HELPER_NICENESS
    """How many nice steps below the predictors the router, joiner and prober run
    (``local/priority.py``): on a shared machine a predictor with work gets the CPU first, as a
    pod's neighbours do not take its cores. 0: everything at one priority."""
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
    timeout: float = 10,
) -> Any:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(
        url,
        data=data,
        method=method,
        headers={"Content-Type": "application/json", **(headers or {})},
    )
    with urllib.request.urlopen(request, timeout=timeout) as response:
        return json.loads(response.read() or b"null")


class LocalPlatform:
    """Serves one or more ModelDeployments as local processes (see the module docstring)."""

    arms_serve_the_same_requests = True
    """The router scores every request on both arms while a canary has weight
    (``--score-both``), so each arm's load does not follow the weight and latency is one
    experiment across the steps (``MetricsWindows(latency_spans_steps=...)``)."""

    def __init__(self, state: StateDir, options: LocalOptions | None = None) -> None:
        self.state = state
        self.options = options or LocalOptions()
        self.table: dict[str, dict[str, ProcRecord]] = {
            key: {role: ProcRecord.from_dict(rec) for role, rec in arms.items()}
            for key, arms in state.load_processes().items()
        }
        # The probe block the operator asked for last, per deployment (``publish_arms``):
        # memory only, as every tick asks again.
        self._probe: dict[str, Mapping[str, Any] | None] = {}

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

    def _model_ready_path(self, target: Target) -> str:
        """Whether the model is loaded and answers, not merely whether the process is up."""
        return f"/v2/models/{target.spec.model.name}/ready"

    def _spawned(self, target: Target, key: str) -> Callable[[ProcRecord], None]:
        """Record a child under ``key`` as soon as it exists (before it is waited on)."""

        def record(rec: ProcRecord) -> None:
            self._arms(target)[key] = rec
            self._save()

        return record

    def _adopt_starting(self, target: Target, role: str, ref: VersionRef) -> ProcRecord | None:
        """A half-started predictor of this role from an earlier run: wait for it when it
        serves ``ref``, else stop it. None when there is none (or it failed)."""
        arms = self._arms(target)
        rec = arms.get(role + STARTING)
        if rec is None:
            return None
        if rec.alive() and rec.labels.get("version") == ref.version:
            self.options.progress(f"adopting the {role} predictor still starting (pid {rec.pid})")
            path = self._model_ready_path(target)
            try:
                return procs.wait_ready(
                    rec,
                    lambda: procs.http_ok(rec.url + path),
                    self.options.start_timeout_s,
                    self.options.progress,
                )
            except procs.StartFailed:
                pass
            finally:
                arms.pop(role + STARTING, None)
                self._save()
            return None
        procs.stop(rec)
        arms.pop(role + STARTING, None)
        self._save()
        return None

    def _predictor(self, target: Target, role: str, ref: VersionRef) -> ProcRecord:
        """The running predictor for (role, version), started (or adopted) as needed."""
        arms = self._arms(target)
        rec = arms.get(role)
        path = self._model_ready_path(target)
        detail = target.spec.serving.response_detail
        same = rec is not None and rec.labels.get("version") == ref.version
        same = same and rec is not None and rec.labels.get("detail") == detail  # the view too
        if same and self._healthy(rec, path):
            assert rec is not None
            return rec
        adopted = self._adopt_starting(target, role, ref)
        if adopted is not None:
            return adopted
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
            fetch_cache=self.state.fetch_cache.resolve(),  # absolute: ``strays`` matches it
            host=LOOPBACK,
            http_port=port,
            grpc_port=0,
            threads=self.options.threads,
            label_token_file=label_file,
            control_token_file=control_file,
            labels_at_joiner=True,  # the joiner counts labels, as on KServe
            response_detail=target.spec.serving.response_detail,
        )
        argv = [
            self.options.python,
            "-m",
            PREDICTOR_MODULE,
            *predictor_args(options),
            *self.options.predictor_args,
        ]
        cpus = None
        if self.options.pin_cpus:
            cpus = arm_cpus(role, usable_cpus(), self.options.threads)
        on = f" on CPUs {','.join(map(str, sorted(cpus)))}" if cpus else ""
        self.options.progress(f"starting {role} predictor for version {ref.version} on :{port}{on}")
        try:
            new = procs.start(
                f"{target.name}-{role}-v{ref.version}",
                argv,
                port=port,
                log_dir=self.state.logs,
                ready=lambda: procs.http_ok(f"http://127.0.0.1:{port}{path}"),
                timeout=self.options.start_timeout_s,
                labels={
                    "role": role,
                    "version": ref.version,
                    "digest": ref.digest,
                    "detail": detail,
                    **({"cpus": ",".join(map(str, sorted(cpus)))} if cpus else {}),
                },
                env={"MODELDEPLOY_EXPECTED_DIGEST": ref.digest} if ref.digest else None,
                progress=self.options.progress,
                on_spawn=self._spawned(target, role + STARTING),
                cpus=cpus,
            )
        except procs.StartFailed as exc:
            self.options.progress(f"! {role} predictor: {exc.reason} (full output: {exc.log})")
            raise PlatformError(
                f"{role} predictor for version {ref.version} failed to start: {exc.reason}",
                arm=role,
            ) from exc
        finally:
            arms.pop(role + STARTING, None)
            self._save()
        self.options.progress(f"{role} predictor for version {ref.version} is ready")
        return new

    def _router(
        self,
        target: Target,
        stable: ProcRecord,
        canary: ProcRecord | None,
        weight: int,
    ) -> ProcRecord:
        """The router with exactly these arms: changed in place (``PUT /router/arms``, no
        restart, in-flight requests drained), started only when none is running."""
        arms = self._arms(target)
        self._write_arms(target, stable, canary)  # before the router sends the canary traffic
        joiner = self._joiner(target)
        rec = arms.get(ROUTER)
        share = round(DEFAULT_PAIRED_SHARE * 100, 3)  # the router's option is in percent
        wanted = {"stable": stable.url, "canary": canary.url if canary else ""}
        detail = target.spec.serving.response_detail
        versions = {f"{role}_version": str(r.labels.get("version", "")) for role, r in
                    ((STABLE, stable), (CANARY, canary)) if r is not None}  # fmt: skip
        same_joiner = rec is not None and rec.labels.get(JOINER) == joiner.url
        same_joiner = same_joiner and rec is not None and rec.labels.get("detail") == detail
        same_joiner = same_joiner and rec is not None and rec.labels.get(SCORE_BOTH) == "1"
        if rec is not None and same_joiner and self._healthy(rec, "/healthz"):
            have = {"stable": rec.labels.get("stable"), "canary": rec.labels.get("canary") or ""}
            if have == wanted:
                if canary is not None:
                    self._put_weight(rec, weight, share)
                return rec
            body: dict[str, Any] = {"stable": stable.url, "canary": wanted["canary"] or None}
            body.update({k: v for k, v in versions.items() if v})  # what the router logs
            if canary is not None:
                body.update(weight=float(weight), paired_share=share)
            try:
                _http_json(
                    "PUT", rec.url + "/router/arms", body, self._control_headers(), timeout=60
                )
            except urllib.error.HTTPError as exc:
                if exc.code not in (404, 405):  # 404/405: a router from before the endpoint
                    raise PlatformError(f"cannot change the router's arms: {exc}") from exc
            except OSError as exc:
                raise PlatformError(f"cannot change the router's arms: {exc}") from exc
            else:
                labels = {**wanted, JOINER: joiner.url, "detail": detail, SCORE_BOTH: "1"}
                arms[ROUTER] = replace(rec, labels=labels)
                self._save()
                return arms[ROUTER]
        port = self._router_port(target)
        if rec is not None:
            procs.stop(rec)
        argv = [
            self.options.python,
            "-m",
            ROUTER_MODULE,
            "--deployment",
            target.name,
            "--host",
            LOOPBACK,
            "--port",
            str(port),
            "--stable",
            stable.url,
            "--owner",
            self._marker(),
            "--joiner-url",
            joiner.url,
            "--joiner-events-url",
            f"http://{LOOPBACK}:{joiner.labels['events_port']}",
            "--response-detail",
            detail,
            "--score-both",  # both arms serve the same requests (docs/local-mode.md)
        ]
        for key, version in versions.items():
            if version:  # the arms' versions: the router records and logs these, not answers'
                argv += ["--" + key.replace("_", "-"), version]
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
        labels = {**wanted, JOINER: joiner.url, "detail": detail, SCORE_BOTH: "1"}
        return self._start_helper(target, ROUTER, argv, port, labels)

    def _arms_dir(self, target: Target) -> Path:
        """The joiner's ``--arms-file`` directory (absolute: ``strays`` matches the marker)."""
        return self.state.root.resolve() / JOINER / target.name

    def _joiner_book(self, target: Target) -> Path:
        """The joiner's ``--state-file``: its book survives a restart of the joiner."""
        return self.state.root.resolve() / JOINER / f"{target.name}.book.sqlite"

    def _write_arms(self, target: Target, stable: ProcRecord, canary: ProcRecord | None) -> None:
        """The arms the joiner re-scores on when pairing on label, in the operator's format
        (``contract/joiner.py``), written whole (a temporary file, then a rename)."""
        roles = {STABLE: stable, **({CANARY: canary} if canary is not None else {})}
        entry = arms_entry(
            target.name,
            target.spec.model.name,
            {role: (rec.url, str(rec.labels.get("version", ""))) for role, rec in roles.items()},
            self._probe.get(target.name) if canary is not None else None,
        )
        folder = self._arms_dir(target)
        folder.mkdir(parents=True, exist_ok=True)
        final = folder / arms_key(ARMS_NAMESPACE, target.name)
        if final.is_file() and final.read_text(encoding="utf-8") == entry:
            return
        scratch = folder / f".{final.name}.tmp"  # a dot-name: the joiner never reads it
        scratch.write_text(entry, encoding="utf-8")
        scratch.replace(final)

    # --- the golden-set prober ------------------------------------------------------

    def publish_arms(
        self,
        target: Target,
        stable: VersionRef | None,
        canary: VersionRef | None,
        probe: Mapping[str, Any] | None = None,
    ) -> None:
        """Probe the rollout while ``probe`` is given (``operator/probing.py``), else stop
        probing; once a tick, after the actions. The arms file gets the probe block only
        while the canary process serves that version. Never raises: probes are evidence,
        not a condition of the rollout (a prober that cannot start is retried next tick)."""
        arms = self._arms(target)
        stable_rec, canary_rec = arms.get(STABLE), arms.get(CANARY)
        serving = (
            stable is not None
            and canary is not None
            and canary_rec is not None
            and canary_rec.labels.get("version") == canary.version
        )
        wanted = probe if serving else None
        try:
            if wanted is None or stable is None or canary is None:
                self._probe[target.name] = None
                if stable_rec is not None:
                    self._write_arms(target, stable_rec, canary_rec if serving else None)
                self._retire_helper(target, PROBER)
                return
            # The prober runs (and has loaded its libraries) before the schedule starts,
            # so its own start-up costs no golden example.
            self._prober(target)
            since = self._probe_anchor(target, stable, canary, wanted)
            self._probe[target.name] = {**wanted, "since": since}
            if stable_rec is not None:
                self._write_arms(target, stable_rec, canary_rec)
        except (OSError, PlatformError) as exc:
            self.options.progress(f"! prober: {exc} (probes resume on a later tick)")

    def _probe_anchor(
        self, target: Target, stable: VersionRef, canary: VersionRef, probe: Mapping[str, Any]
    ) -> float:
        """The rollout's schedule start, kept in the state directory once chosen.

        The status gives the canary's start (``probe["since"]``), but the canary and the
        prober take a while to load, and every slot that came due meanwhile would be
        skipped. So the first time both arms serve and the prober runs, the start becomes
        ``max(since, now)``, written to
        ``<state>/prober/<name>.json`` and never moved later for this pair of versions (a
        later start could re-send an example a stopped prober already sent).
        """
        file = self.state.root / PROBER / f"{target.name}.json"
        # One rollout: these two versions, from this canary start (a retry is a new one).
        pair = {"stable": stable.version, "canary": canary.version, "rollout": probe["since"]}
        try:
            kept = json.loads(file.read_text(encoding="utf-8"))
            if {k: kept.get(k) for k in pair} == pair:
                return float(kept["since"])
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            pass
        since = max(float(probe["since"]), time.time())
        file.parent.mkdir(parents=True, exist_ok=True)
        scratch = file.with_name(f".{file.name}.tmp")
        scratch.write_text(json.dumps({**pair, "since": since}), encoding="utf-8")
        scratch.replace(file)
        return since

    def _prober(self, target: Target) -> ProcRecord:
        """The deployment's prober, started when none is healthy."""
        rec = self._arms(target).get(PROBER)
        if rec is not None and self._healthy(rec, "/healthz"):
            return rec
        if rec is not None:
            procs.stop(rec)
        port = procs.free_port()
        argv = [
            self.options.python,
            "-m",
            PROBER_MODULE,
            "--arms-file",
            str(self._arms_dir(target)),
            "--host",
            LOOPBACK,
            "--port",
            str(port),
            "--poll-s",
            "0.5",
            "--margin-s",
            "0.2",  # one machine, one clock: a small guard against re-sending suffices
        ]
        self.options.progress(f"starting the golden-set prober on :{port}")
        return self._start_helper(target, PROBER, argv, port, {})

    def _retire_helper(self, target: Target, role: str) -> None:
        rec = self._arms(target).pop(role, None)
        if rec is not None:
            procs.stop(rec)
            self.options.progress(f"stopped the {role}")
            self._save()

    def _joiner(self, target: Target) -> ProcRecord:
        """The deployment's joiner (labels, pairing on label, the analysis's label counters),
        started when none is healthy; its two ports are kept, so the router's URLs hold."""
        arms = self._arms(target)
        rec = arms.get(JOINER)
        if rec is not None and self._healthy(rec, "/healthz"):
            return rec
        port = rec.port if rec is not None else procs.free_port()
        events_port = int(rec.labels["events_port"]) if rec is not None else procs.free_port()
        if rec is not None:
            procs.stop(rec)
        argv = [
            self.options.python,
            "-m",
            JOINER_MODULE,
            "--host",
            LOOPBACK,
            "--port",
            str(port),
            "--events-port",
            str(events_port),
            "--arms-file",
            str(self._arms_dir(target)),
            "--state-file",
            str(self._joiner_book(target)),
        ]
        label_file, control_file = self._auth_files()
        if label_file is not None and control_file is not None:
            argv += ["--label-token-file", str(label_file),
                     "--control-token-file", str(control_file)]  # fmt: skip
        self.options.progress(f"starting the joiner on :{port} (events :{events_port})")
        return self._start_helper(target, JOINER, argv, port, {"events_port": events_port})

    def _start_helper(
        self, target: Target, role: str, argv: list[str], port: int, labels: dict[str, Any]
    ) -> ProcRecord:
        """Start the router, the joiner or the prober (``role``), record it, save the state.

        A start that fails forgets the old record too, so the next tick starts it afresh.
        """
        arms = self._arms(target)
        try:
            new = procs.start(
                f"{target.name}-{role}",
                argv,
                port=port,
                log_dir=self.state.logs,
                ready=lambda: procs.http_ok(f"http://127.0.0.1:{port}/healthz"),
                timeout=min(self.options.start_timeout_s, 120.0),
                labels=labels,
                progress=self.options.progress,
                on_spawn=self._spawned(target, role),
                lower_priority_by=self.options.helper_niceness,
            )
        except procs.StartFailed as exc:
            arms.pop(role, None)
            self._save()
            raise PlatformError(f"the {role} failed to start: {exc.reason}") from exc
        arms[role] = new
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
        if weight == 0 and (arms.get(CANARY) is None or not arms[CANARY].alive()):
            # Pulling traffic off a canary that is not running must not start it again.
            if router is not None and arms.get(CANARY) is not None:
                self._put_weight(router, 0)
            return
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
        health = self.health(target)
        return self._healthy(arms[ROUTER], "/healthz") and all(h.ready for h in health.values())

    def health(self, target: Target) -> Mapping[str, ArmHealth]:
        """Each predictor: exited (``gone``, with exit code and last log line), or whether
        its model says ready at ``/v2/models/NAME/ready``."""
        arms = self._arms(target)
        path = self._model_ready_path(target)
        out = {}
        for role in (STABLE, CANARY):
            rec = arms.get(role)
            if rec is None:
                continue
            if not rec.alive():
                out[role] = ArmHealth(False, f"{role} {procs.exit_reason(rec)}", gone=True)
            elif procs.http_ok(rec.url + path):
                out[role] = ArmHealth(True)
            else:
                out[role] = ArmHealth(False, f"{role} model not ready at {path}")
        router = arms.get(ROUTER)
        if router is not None and not router.alive() and out.get(STABLE, ArmHealth(False)).ready:
            # Every request goes through the router: a dead router is a dead stable arm,
            # and re-applying the stable arm (ensure, set_canary) starts the router again.
            out[STABLE] = ArmHealth(False, f"router {procs.exit_reason(router)}", gone=True)
        joiner = arms.get(JOINER)
        if joiner is not None and not joiner.alive():
            # Labels go nowhere: no arm is to blame, so nothing is rolled back; the analysis
            # holds (``is_ready`` is false, and the joiner's /metrics cannot be read).
            reason = (
                f"joiner {procs.exit_reason(joiner)}: labels are not counted, the rollout holds"
            )
            out[JOINER] = ArmHealth(False, reason)
            if out.get(STABLE, ArmHealth(False)).ready:
                # As for the router: re-applying the stable arm (which adopts the healthy
                # predictors) starts the joiner again on its ports, within this tick.
                out[STABLE] = ArmHealth(False, reason, gone=True)
        return out

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
        """Stop every process of ``name`` (or of all deployments) and forget them, then
        any predictor that names this state directory's fetch cache but was not recorded."""
        for key in [name] if name else list(self.table):
            arms = self.table.pop(key, {}) if key else {}
            for role in sorted(arms, key=lambda r: (r != ROUTER, r == JOINER)):  # router first
                procs.stop(arms[role])
        self._save()
        known = {rec.pid for arms in self.table.values() for rec in arms.values()}
        for module in (ROUTER_MODULE, JOINER_MODULE, PROBER_MODULE, PREDICTOR_MODULE):
            for pid in procs.strays(module, self._marker(), known):
                self.options.progress(f"stopping unrecorded {module} (pid {pid})")
                procs.kill_pid(pid)

    def _marker(self) -> str:
        """This state directory, as its children's arguments name it (absolute, with a
        trailing separator so that ``state`` never matches ``state2``)."""
        return str(self.state.root.resolve()) + os.sep

    def metrics_endpoints(self, target: Target) -> list[str]:
        """``/metrics`` of every serving process of ``target``: predictors, router, joiner
        (which counts application labels and their pairs here, as on KServe) and the
        prober while it runs (``source="probe"``)."""
        arms = self.table.get(target.name, {})
        roles = (STABLE, CANARY, ROUTER, JOINER)
        found = [arms[r].url + "/metrics" for r in roles if r in arms]
        prober = arms.get(PROBER)
        if prober is not None and prober.alive():  # a dead prober must not hold the analysis
            found.append(prober.url + "/metrics")
        return found

    def logs_dir(self) -> Path:
        return self.state.logs
