"""``python -m modeldeploy.serving.bench --output FILE``."""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m modeldeploy.serving.bench")
    parser.add_argument("--output", type=Path, default=Path("bench/results.json"))
    args = parser.parse_args(argv)
    from modeldeploy.serving.bench.run import run

    work = args.output.parent / "serving-logs"
    results = run(work)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy(work / "results.json", args.output)
    print(json.dumps(results["ratios_vs_baseline"], indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
