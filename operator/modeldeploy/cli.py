"""The ``modeldeploy`` command line (the product's; the development commands live apart).

Each part of the project contributes its own subcommands through a
``register(subparsers)`` function in ``modeldeploy.<part>.cli``; this module only
assembles them, so argv is parsed here and nowhere at import time. Exit codes:
0 success, 1 a failed operation (the message says why), 2 bad usage.

The checkpoint factory, the demo and the benchmarks are not product commands: they
are ``modeldeploy-dev`` (``modeldeploy.tools.cli``), which reuses :func:`build_parser`
and :func:`dispatch` with its own modules. The product never imports the tools, so an
operator or serving image works without the ``dev`` extra.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import sys
from collections.abc import Sequence

# Modules that contribute subcommands. A part whose third-party dependencies are not
# installed (an image with only the `operator` or only the `serving` extra) is left out
# and named in the help text; the other parts' commands still work.
COMMAND_MODULES: tuple[str, ...] = (
    "modeldeploy.registry.cli",
    "modeldeploy.serving.cli",
    "modeldeploy.serving.triton.cli",
    "modeldeploy.operator.cli",
    "modeldeploy.operator.local.cli",
)
DESCRIPTION = "Canary rollouts for BERT-family classifiers, gated on live accuracy and P99."


class CommandError(Exception):
    """A user-facing failure: printed without a traceback, exit code 1."""


def build_parser(
    modules: Sequence[str] = COMMAND_MODULES,
    prog: str = "modeldeploy",
    description: str = DESCRIPTION,
) -> argparse.ArgumentParser:
    """One parser with the subcommands that ``modules`` register."""
    parser = argparse.ArgumentParser(prog=prog, description=description)
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    missing: list[str] = []
    for name in modules:
        try:
            importlib.import_module(name).register(subparsers)
        except ModuleNotFoundError as exc:
            if exc.name and name.startswith(exc.name):
                continue  # that part has no CLI (yet)
            if not exc.name or exc.name.split(".")[0] == "modeldeploy":
                raise  # a broken import inside the project is a bug, not a missing extra
            missing.append(f"{name} (needs {exc.name.split('.')[0]})")
    if missing:
        parser.epilog = "Not available in this installation: " + ", ".join(missing) + "."
    return parser


# The long-running commands build their parser from their own module only, so the process
# holds none of the other parts' imports: in an install with every extra, registering
# ``serve`` loads the serving stack (kserve, pandas, fastapi: about 70 MB) that
# ``operator run`` would then carry for its whole life.
LONG_RUNNING: dict[str, str] = {
    "operator": "modeldeploy.operator.cli",
    "local": "modeldeploy.operator.local.cli",
}


# ``serve`` skips this module's parser altogether: it is the predictor images' entrypoint, and
# ``python -m modeldeploy.serving`` starts faster (kserve's package __init__ skipped, no
# other part's CLI imported: 1.72 s against 1.97 s to the first prediction) and with one
# malloc arena (docs/serving.md, "One malloc arena"). Only where the serving stack is
# installed; elsewhere the parser says that ``serve`` is not available.
SERVE = "serve"


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if args[:1] == [SERVE] and "-h" not in args and "--help" not in args and _serving_installed():
        from modeldeploy.serving.__main__ import main as serve

        return serve(args[1:], prog=f"modeldeploy {SERVE}", own_process=argv is None)
    home = LONG_RUNNING.get(args[0]) if args else None
    return dispatch(build_parser((home,) if home else COMMAND_MODULES), args)


def _serving_installed() -> bool:
    """Whether the predictor's dependencies are installed (found, not imported)."""
    return importlib.util.find_spec("kserve") is not None


def dispatch(parser: argparse.ArgumentParser, argv: Sequence[str] | None = None) -> int:
    """Parse ``argv`` and run the chosen handler; map failures to the exit codes above."""
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
