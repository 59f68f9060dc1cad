"""``modeldeploy serve`` and ``modeldeploy bench``: the predictor from the main CLI."""

from __future__ import annotations

import argparse
from pathlib import Path


def register(subparsers: argparse._SubParsersAction) -> None:
    from modeldeploy.serving.config import add_arguments

    serve = subparsers.add_parser(
        "serve", help="serve a classifier (KServe v1/v2 REST and gRPC, metrics, feedback)"
    )
    add_arguments(serve)
    serve.set_defaults(handler=_serve)

    bench = subparsers.add_parser(
        "bench", help="latency/throughput of the predictor vs a naive baseline (and Triton)"
    )
    bench.add_argument("--output", type=Path, default=Path("bench/results.json"))
    bench.set_defaults(handler=_bench)


def _serve(args: argparse.Namespace) -> int:
    from modeldeploy.cli import CommandError
    from modeldeploy.serving.backends.base import ParityFailed
    from modeldeploy.serving.config import ConfigError, from_args
    from modeldeploy.serving.loading import LoadError
    from modeldeploy.serving.server import run

    try:
        return run(from_args(args))
    except (ConfigError, ParityFailed, LoadError) as exc:
        raise CommandError(str(exc)) from exc


def _bench(args: argparse.Namespace) -> int:
    from modeldeploy.serving.bench.__main__ import main

    return main(["--output", str(args.output)])
