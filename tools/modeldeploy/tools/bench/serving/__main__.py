"""``python -m modeldeploy.tools.bench.serving [--quick] --output FILE [--key KEY]``.

Merges the figures into FILE (other keys are kept), as ``modeldeploy-dev bench`` does,
under the key for this CPU (:mod:`.keys`: ``serving`` where it has bf16 units,
``serving_avx2`` on an AVX2 CPU without them), so a run on one kind of CPU never replaces
another kind's; ``--key`` names a key explicitly (a test's scratch run); logs go to
``serving-logs/`` beside FILE. ``--quick`` checks the shape on the tiny checkpoint (its
figures mean nothing; keep it out of bench/results.json). ``--cold-start N`` runs only
the cold-start part (N starts per runtime after a preparing one) and prints its figures,
leaving FILE alone.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from datetime import UTC, datetime
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m modeldeploy.tools.bench.serving")
    parser.add_argument("--output", type=Path, default=Path("bench/results.json"))
    parser.add_argument("--quick", action="store_true", help="tiny checkpoint, few requests")
    parser.add_argument(
        "--key",
        help="the key of FILE to write (default: by the CPU, serving where it has bf16 "
        "units, serving_avx2 on AVX2 without them)",
    )
    parser.add_argument(
        "--cold-start", type=int, metavar="N", help="only the cold start, N starts per runtime"
    )
    args = parser.parse_args(argv)
    from modeldeploy.tools.bench.serving.keys import this_machine_key
    from modeldeploy.tools.bench.serving.run import cold_start, run

    if args.cold_start:
        figures = cold_start(args.output.parent, runs=args.cold_start, quick=args.quick)
        print(json.dumps(figures, indent=2))
        return 0

    args.output.parent.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    figures = run(args.output.parent, quick=args.quick)
    merged = json.loads(args.output.read_text()) if args.output.exists() else {}
    key = args.key or this_machine_key()
    merged[key] = {
        "figures": figures,
        "seconds": round(time.monotonic() - started, 1),
        "measured_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    args.output.write_text(json.dumps(merged, indent=2) + "\n")
    print(json.dumps(figures["summary"], indent=2))
    print(f"written to {args.output} under {key!r}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
