"""The ``modeldeploy`` command line.

Each part of the project contributes its own subcommands through a
``register(subparsers)`` function in ``modeldeploy.<part>.cli``; this module only
assembles them, so argv is parsed here and nowhere at import time. Exit codes:
0 success, 1 a failed operation (the message says why), 2 bad usage.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

# Modules that contribute subcommands. A part that is not importable (for example
# while a dependency is missing) is reported when its command is used, not at start.
COMMAND_MODULES: tuple[str, ...] = (
    "modeldeploy.tools.checkpoints.cli",
    "modeldeploy.registry.cli",
    "modeldeploy.serving.cli",
    "modeldeploy.serving.triton.cli",
    "modeldeploy.operator.cli",
    "modeldeploy.operator.local.cli",
    "modeldeploy.tools.demo.cli",
    "modeldeploy.tools.bench.cli",
)


class CommandError(Exception):
    """A user-facing failure: printed without a traceback, exit code 1."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="modeldeploy",
        description="Canary rollouts for BERT-family classifiers, gated on live accuracy and P99.",
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name and name.startswith(exc.name):
                continue  # that part has no CLI (yet)
            raise
        module.register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    handler = getattr(args, "handler", None)
    if handler is None:
        parser.print_help()
        return 2
    try:
        return int(handler(args) or 0)
    except CommandError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
