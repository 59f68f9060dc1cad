"""``python -m modeldeploy.serving``: start one predictor. The only place argv is parsed."""

from __future__ import annotations

import argparse
import sys


def main(argv: list[str] | None = None) -> int:
    from modeldeploy.serving.auth import AuthConfigError
    from modeldeploy.serving.backends.base import ParityFailed
    from modeldeploy.serving.config import ConfigError, add_arguments, from_args
    from modeldeploy.serving.loading import LoadError

    parser = argparse.ArgumentParser(
        prog="python -m modeldeploy.serving",
        description="Serve a BERT-family text classifier over KServe v1/v2 (REST and gRPC).",
    )
    add_arguments(parser)
    args = parser.parse_args(argv)
    try:
        config = from_args(args)
    except ConfigError as exc:
        parser.error(str(exc))
    from modeldeploy.serving.server import run

    try:
        return run(config)
    except (ParityFailed, LoadError, AuthConfigError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
