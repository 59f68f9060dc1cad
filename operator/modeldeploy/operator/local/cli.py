"""``modeldeploy local apply|status|down``: the operator on one machine.

``apply -f FILE`` records the ModelDeployment in the state directory and runs the
reconcile loop in the foreground (Ctrl-C stops it and its processes; the status stays in
the state file, and the next ``apply`` resumes from it and the registry).
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

from modeldeploy.operator.local.priority import HELPER_NICENESS, NICE_MAX
from modeldeploy.operator.local.state import DEFAULT_STATE_DIR, StateDir
from modeldeploy.operator.report import step_timing

if TYPE_CHECKING:
    from modeldeploy.operator.local.platform import LocalOptions


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("local", help="run a ModelDeployment on this machine")
    sub = parser.add_subparsers(dest="local_command", metavar="SUBCOMMAND")

    apply = sub.add_parser("apply", help="run the rollout loop for a ModelDeployment YAML")
    apply.add_argument("-f", "--filename", required=True, help="the ModelDeployment YAML")
    apply.add_argument("--registry-uri", default="", help="overrides spec.model.registryUri")
    _state_arg(apply)
    apply.add_argument("--tick-seconds", type=float, default=2.0, help="seconds between ticks")
    apply.add_argument("--router-port", type=int, default=0, help="0: pick a free port once")
    apply.add_argument(
        "--threads", type=int, default=1, help="torch threads (and pinned CPUs) per predictor"
    )
    apply.add_argument(
        "--pin-cpus",
        action="store_true",
        help="each arm's predictor on --threads CPUs of its own (default: all processes float)",
    )
    apply.add_argument(
        "--helper-niceness",
        type=int,
        default=HELPER_NICENESS,
        choices=range(NICE_MAX + 1),
        metavar=f"0..{NICE_MAX}",
        help=f"run the router, joiner and prober this many nice steps below the predictors "
        f"(default {HELPER_NICENESS}; 0: one priority for all)",
    )
    apply.add_argument("--max-seconds", type=float, help="stop after this long")
    apply.add_argument("--once", action="store_true", help="run one tick, leave processes up")
    apply.set_defaults(handler=_apply)

    status = sub.add_parser("status", help="print the status from the state directory")
    _state_arg(status)
    status.add_argument("--json", action="store_true", help="the raw status as JSON")
    status.set_defaults(handler=_status)

    down = sub.add_parser("down", help="stop every process recorded in the state directory")
    _state_arg(down)
    down.set_defaults(handler=_down)
    parser.set_defaults(handler=lambda args: parser.print_help() or 2)


def _state_arg(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--state-dir", default=DEFAULT_STATE_DIR, help=f"default ./{DEFAULT_STATE_DIR}"
    )


def load_manifest(path: str | Path) -> dict[str, Any]:
    import yaml

    docs = [d for d in yaml.safe_load_all(Path(path).read_text()) if d]
    found = [d for d in docs if isinstance(d, dict) and d.get("kind") == "ModelDeployment"]
    if len(found) != 1:
        raise ValueError(f"{path}: expected exactly one ModelDeployment, found {len(found)}")
    return found[0]


def local_options(args: argparse.Namespace) -> LocalOptions:
    """The ``LocalOptions`` that ``local apply``'s flags ask for."""
    from modeldeploy.operator.local.platform import LocalOptions

    return LocalOptions(
        router_port=args.router_port,
        threads=args.threads,
        pin_cpus=args.pin_cpus,
        helper_niceness=args.helper_niceness,
    )


def _apply(args: argparse.Namespace) -> int:
    from modeldeploy.cli import CommandError
    from modeldeploy.operator.api.types import SpecError
    from modeldeploy.operator.local.runner import LocalOperator

    def out(line: str) -> None:
        print(line, flush=True)

    op = LocalOperator(
        StateDir(args.state_dir),
        registry_uri=args.registry_uri,
        options=local_options(args),
        out=out,
    )
    try:
        op.apply(load_manifest(args.filename))
    except (SpecError, ValueError, OSError) as exc:
        raise CommandError(str(exc)) from exc
    out(f"applied {op.name} (state in {args.state_dir})")
    _print_label_token(args.state_dir)
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    if args.once:
        op.restore()
        op.tick()
        _print_status(op.data)
        return 0
    try:
        op.run(
            tick_seconds=args.tick_seconds, max_seconds=args.max_seconds, should_stop=stop.is_set
        )
    finally:
        out("stopping the local processes (the status stays in the state file)")
        op.shutdown()
    _print_status(op.data)
    return 0


def format_status(data: dict[str, Any]) -> str:
    meta, status = data.get("metadata") or {}, data.get("status") or {}
    spec_model = (data.get("spec") or {}).get("model") or {}
    stable = (status.get("stable") or {}).get("version", "-")
    canary = status.get("canary") or {}
    lines = [
        f"NAME     {meta.get('name', '-')}",
        f"MODEL    {spec_model.get('name', '-')}",
        f"PHASE    {status.get('phase', 'Initializing')}",
        f"STABLE   {stable}",
        f"CANARY   {canary.get('version', '-')}  weight {canary.get('weight', 0)}%"
        f"  step {canary.get('step', '-')}",
        f"MESSAGE  {status.get('message', '')}",
    ]
    last = status.get("lastAnalysis") or {}
    if last:
        lines.append(f"ANALYSIS {last.get('decision')}: {last.get('reason')}")
        timing = step_timing(last)
        if timing:
            lines.append(f"TIMING   {timing}")
    for entry in status.get("history") or []:
        lines.append(
            f"HISTORY  v{entry.get('version')} {entry.get('outcome')}: {entry.get('reason')}"
        )
    for cond in status.get("conditions") or []:
        lines.append(f"COND     {cond.get('type')}={cond.get('status')} {cond.get('reason', '')}")
    return "\n".join(lines)


def _print_status(data: dict[str, Any]) -> None:
    print(format_status(data))


def _print_label_token(state_dir: str) -> None:
    """Where a labelling application reads its token (never the token itself)."""
    from modeldeploy.operator.local.platform import token_files

    label_file = token_files(StateDir(state_dir))[0]
    if label_file.exists():
        print(f"LABELS   token in {label_file} (send 'Authorization: Bearer <token>')")
    else:
        print(f"LABELS   open: no {label_file} (labels and weights need no credential)")


def _status(args: argparse.Namespace) -> int:
    from modeldeploy.cli import CommandError

    data = StateDir(args.state_dir).load()
    if not data:
        raise CommandError(f"no local deployment in {args.state_dir} (run `local apply` first)")
    if args.json:
        json.dump(data.get("status") or {}, sys.stdout, indent=2, sort_keys=True)
        print()
    else:
        _print_status(data)
        _print_label_token(args.state_dir)
        _print_processes(args.state_dir)
    return 0


def _print_processes(state_dir: str) -> None:
    """Each recorded process (predictors, router, joiner): alive, or why it is gone."""
    from modeldeploy.operator.local import procs
    from modeldeploy.operator.local.platform import LocalPlatform

    for name, arms in LocalPlatform(StateDir(state_dir)).table.items():
        for role, rec in sorted(arms.items()):
            state = "running" if rec.alive() else procs.exit_reason(rec)
            pinned = f", CPUs {rec.labels['cpus']}" if rec.labels.get("cpus") else ""
            print(f"PROCESS  {name} {role}: {state} (pid {rec.pid}, {rec.url}{pinned})")


def _down(args: argparse.Namespace) -> int:
    from modeldeploy.operator.local.platform import LocalPlatform

    LocalPlatform(StateDir(args.state_dir)).stop_all()
    print(f"stopped the processes recorded in {args.state_dir}")
    return 0
