"""``modeldeploy-dev demo``: the main job on one machine (what ``make demo`` runs).

A real MLflow, the operator in local mode on ``examples/local-demo.yaml``, real predictor
processes and the router, review sentences with delayed labels, one promotion and one
rollback, then a Markdown report and a PNG timeline. ``--quick`` runs the same scenario
with small checkpoints (the CI version). See docs/demo.md.
"""

from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("demo", help="run the one-machine demo (see docs/demo.md)")
    parser.add_argument(
        "--profile",
        choices=("full", "quick", "ci"),
        default="full",
        help="full (MiniLM checkpoints, ~10 min) or quick/ci (tiny checkpoints, ~3 min)",
    )
    parser.add_argument("--quick", action="store_true", help="same as --profile quick")
    parser.add_argument("--output-dir", default="demo-output", help="default ./demo-output")
    parser.add_argument(
        "-f", "--filename", default="examples/local-demo.yaml", help="the ModelDeployment YAML"
    )
    parser.set_defaults(handler=_run)


def _run(args: argparse.Namespace) -> int:
    from modeldeploy.tools.demo.scenario import run_demo

    profile = "quick" if args.quick or args.profile in ("quick", "ci") else "full"
    result = run_demo(profile, args.output_dir, args.filename)
    return 0 if result.ok else 1
