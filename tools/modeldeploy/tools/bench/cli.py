"""``modeldeploy-dev bench``: run the benchmark suites and write one results file.

Each suite is a function returning a JSON-serialisable dict; results are merged
into ``bench/results.json`` under the suite's name, with the machine and the time of
the run, so README figures always point at a measured run. The ``serving`` suite's key
depends on the CPU (``serving`` with bf16 units, ``serving_avx2`` without:
:mod:`.serving.keys`), so a run on one kind of CPU never replaces another kind's figures.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import platform
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

# suite name -> "module:function"; each function takes (output_dir, progress).
SUITES: dict[str, str] = {
    "analysis": "modeldeploy.tools.bench.simulation:run_suite",
    "drift": "modeldeploy.tools.bench.drift:run_suite",
    "operator": "modeldeploy.tools.bench.operator_scale:run_suite",
    "serving": "modeldeploy.tools.bench.serving.run:run",
    "rollouts": "modeldeploy.tools.bench.rollouts:run_suite",
    "soak": "modeldeploy.tools.bench.soak:run",
}
# Suites whose figures sit at the top of their key (``rollouts``: {"cells", "summary", ...}).
FLAT = {"rollouts"}


def results_key(suite: str) -> str:
    """The key of the results file a suite's run goes under (by the CPU for ``serving``)."""
    if suite != "serving":
        return suite
    from modeldeploy.tools.bench.serving.keys import this_machine_key

    return this_machine_key()


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "bench", help="run the benchmarks (analysis simulation, serving) into bench/results.json"
    )
    _add_arguments(parser)
    parser.set_defaults(handler=_run)


def _add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--output", default="bench/results.json", help="results file")
    parser.add_argument(
        "--suite", action="append", choices=sorted(SUITES), help="run only these suites"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m modeldeploy.tools.bench.cli", description=__doc__
    )
    _add_arguments(parser)
    return _run(parser.parse_args(argv))


def _progress(suite: str) -> Callable[[str], None]:
    def say(message: str) -> None:
        print(f"  [{suite}] {message}", file=sys.stderr, flush=True)

    return say


def _load(spec: str) -> Callable[..., dict[str, Any]] | None:
    module_name, _, func = spec.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name and module_name.startswith(exc.name):
            return None
        raise
    return getattr(module, func, None)


def _run(args: argparse.Namespace) -> int:
    output = Path(args.output)
    results: dict[str, Any] = json.loads(output.read_text()) if output.exists() else {}
    for suite in args.suite or sorted(SUITES):
        run = _load(SUITES[suite])
        if run is None:
            print(f"{suite}: not available yet, skipped", file=sys.stderr)
            continue
        print(f"running benchmark suite {suite}", file=sys.stderr)
        started = time.monotonic()
        figures = run(output.parent, _progress(suite))
        key = results_key(suite)
        results[key] = {
            **(figures if suite in FLAT else {"figures": figures}),
            "seconds": round(time.monotonic() - started, 1),
            "measured_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "machine": {
                "cpus": os.cpu_count(),
                "platform": platform.platform(),
                "python": platform.python_version(),
            },
        }
        output.parent.mkdir(parents=True, exist_ok=True)
        output.write_text(json.dumps(results, indent=2) + "\n")
        print(f"{suite}: written to {output} under {key!r}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
