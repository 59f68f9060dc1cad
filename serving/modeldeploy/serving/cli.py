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
    from modeldeploy.cli import CommandError
    from modeldeploy.serving.__main__ import serve
    from modeldeploy.serving.config import ConfigError, from_args
    from modeldeploy.serving.startup import pause_gc, preload_native, prepare_environment

    pause_gc()  # until the model is built (server.run resumes it)
    # Before torch or onnxruntime load (startup.py says why). kserve is already imported
    # here (by the options), so this path cannot skip its package __init__.
    prepare_environment()
    preload_native(args.runtime)  # overlaps with the checks before the backend loads
    try:
        config = from_args(args)
    except ConfigError as exc:
        raise CommandError(str(exc)) from exc
    return serve(config)  # start failures: the same one line and exit codes
