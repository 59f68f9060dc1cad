"""``modeldeploy operator run|crd|rbac`` and ``modeldeploy rollout ...`` (status, promote, etc.).

The rollout commands only read the resource and set annotations (see ``control.py``),
so they do exactly what ``kubectl annotate`` would do; the operator acts on them.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

KUBECONFIG_HELP = "Outside a cluster: the kubeconfig file (default: $KUBECONFIG, ~/.kube/config)"


def register(subparsers: Any) -> None:
    op = subparsers.add_parser("operator", help="Run the operator, or print its CRD.")
    op_sub = op.add_subparsers(dest="operator_command", metavar="COMMAND")
    crd = op_sub.add_parser("crd", help="Print the ModelDeployment CRD as YAML.")
    crd.set_defaults(handler=_crd)
    rbac = op_sub.add_parser(
        "rbac", help="Print the RBAC rules the operator needs as YAML (the chart's rules file)."
    )
    rbac.set_defaults(handler=_rbac)
    run = op_sub.add_parser("run", help="Run the operator against the current kube context.")
    run.add_argument("-n", "--namespace", action="append", default=[], help="Namespaces to watch")
    run.add_argument("--all-namespaces", "-A", action="store_true", help="Watch every namespace")
    run.add_argument("--standalone", action="store_true", help="No peering / leader election")
    run.add_argument("--peering", default="modeldeploy", help="Peering object for leader election")
    run.add_argument("--liveness", default="", help="e.g. http://0.0.0.0:8080/healthz")
    run.add_argument(
        "--priority",
        type=int,
        default=0,
        help="Peering priority of this replica (default: random, so replicas differ)",
    )
    run.add_argument("--kubeconfig", default="", help=KUBECONFIG_HELP)
    run.set_defaults(handler=_run)

    ro = subparsers.add_parser("rollout", help="See or steer a ModelDeployment's rollout.")
    ro_sub = ro.add_subparsers(dest="rollout_command", metavar="COMMAND")
    for name, text in (
        ("status", "Show phase, versions, weight, last analysis and history."),
        ("promote", "Promote the current canary now."),
        ("abort", "Roll the current canary back now."),
        ("pause", "Freeze the rollout where it is."),
        ("resume", "Continue a paused rollout."),
    ):
        cmd = ro_sub.add_parser(name, help=text)
        cmd.add_argument("name", help="The ModelDeployment")
        cmd.add_argument("-n", "--namespace", default="default")
        cmd.add_argument("--json", action="store_true", help="Machine-readable output (status)")
        cmd.add_argument("--kubeconfig", default="", help=KUBECONFIG_HELP)
        cmd.set_defaults(handler=_rollout, rollout_command=name)


def _crd(args: argparse.Namespace) -> int:
    from modeldeploy.operator.api.crd import render_crd

    sys.stdout.write(render_crd())
    return 0


def _rbac(args: argparse.Namespace) -> int:
    from modeldeploy.operator.rbac import render

    sys.stdout.write(render())
    return 0


def _run(args: argparse.Namespace) -> int:
    from modeldeploy.operator.runner import run_operator

    return run_operator(
        namespaces=args.namespace,
        all_namespaces=args.all_namespaces,
        standalone=args.standalone,
        peering=args.peering,
        liveness=args.liveness,
        priority=args.priority,
        kubeconfig=args.kubeconfig,
    )


def _rollout(args: argparse.Namespace) -> int:
    from modeldeploy.cli import CommandError
    from modeldeploy.operator import kubeapi
    from modeldeploy.operator.control import annotation_patch
    from modeldeploy.operator.report import describe

    try:
        api = kubeapi.custom_objects(args.kubeconfig or None)
        body = kubeapi.get_md(api, args.namespace, args.name)
        if args.rollout_command == "status":
            if args.json:
                print(json.dumps(body.get("status") or {}, indent=2))
            else:
                print(describe(body))
            return 0
        canary = ((body.get("status") or {}).get("canary") or {}).get("version", "")
        patch = annotation_patch(args.rollout_command, str(canary))
        kubeapi.patch_md(api, args.namespace, args.name, {"metadata": {"annotations": patch}})
    except (ValueError, kubeapi.KubeError) as exc:
        raise CommandError(str(exc)) from exc
    print(f"{args.rollout_command}: requested on {args.namespace}/{args.name}")
    return 0
