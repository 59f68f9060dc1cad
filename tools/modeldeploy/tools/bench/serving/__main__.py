"""``python -m modeldeploy.tools.bench.serving --output FILE`` (logs go to serving-logs/)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m modeldeploy.tools.bench.serving")
    parser.add_argument("--output", type=Path, default=Path("bench/serving.json"))
    args = parser.parse_args(argv)
    from modeldeploy.tools.bench.serving.run import run

    args.output.parent.mkdir(parents=True, exist_ok=True)
    results = run(args.output.parent)
    args.output.write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps({"cold_start": results["cold_start"]}, indent=2))
    print(json.dumps(results["ratios_vs_baseline"], indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
