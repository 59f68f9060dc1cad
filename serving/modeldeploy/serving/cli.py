"""``modeldeploy serve``: the predictor (benchmarks are ``modeldeploy-dev bench``)."""

from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:
    from modeldeploy.serving.config import add_arguments

    serve = subparsers.add_parser(
        "serve", help="serve a classifier (KServe v1/v2 REST and gRPC, metrics, feedback)"
    )
    add_arguments(serve)
    serve.set_defaults(handler=_serve)


def _serve(args: argparse.Namespace) -> int:
    """The handler for a caller of the parser itself (``dispatch``): the console script
    ``modeldeploy serve`` does not come here, ``modeldeploy.cli.main`` hands its arguments
    to ``python -m modeldeploy.serving``'s entry point, which starts faster."""
    from modeldeploy.cli import CommandError
    from modeldeploy.serving.__main__ import serve
    from modeldeploy.serving.config import ConfigError, from_args
    from modeldeploy.serving.startup import begin

    # kserve is already imported here (by the options), so its __init__ cannot be skipped;
    # the native libraries load while the checks before the backend run.
    begin(args.runtime, skip_kserve_init=False)
    try:
        config = from_args(args)
    except ConfigError as exc:
        raise CommandError(str(exc)) from exc
    return serve(config)  # start failures: the same one line and exit codes
