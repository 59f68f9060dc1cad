"""One predictor under load, with what the whole suite does not show: rows per forward pass
and where the predictor's CPU goes.

``python -m modeldeploy.tools.bench.serving.one --runtime torch --concurrency 1,16,64``
starts one predictor on the ``good`` checkpoint (the suite's batching: 64 items, 5 ms),
drives it with the suite's load generator on the same held-out sentences, and prints one
JSON object per concurrency: the load figures, the mean rows per forward pass
(``modeldeploy_batch_size`` read from ``/metrics`` before and after the run) and the
predictor's CPU per request in the event-loop thread and in the rest (the inference
thread and the runtime's workers), from ``/proc/<pid>/task``. It writes no results file: it is for
back-to-back comparisons of batcher changes (run it twice, once with ``PYTHONPATH``
pointing at the other code's ``serving/`` folder; the predictor subprocess inherits it).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

from modeldeploy.tools.bench.serving.load import measure
from modeldeploy.tools.bench.serving.run import (
    BATCH_SIZE_SERIES,
    FULL,
    QUICK,
    _predictor,
    _start,
    _stop,
    histogram_totals,
    scrape,
)


def batch_totals(metrics_text: str) -> tuple[float, float]:
    """(sum, count) of ``modeldeploy_batch_size`` over all its series in a scrape."""
    return histogram_totals(metrics_text, BATCH_SIZE_SERIES)


def thread_cpu(pid: int) -> dict[str, float]:
    """CPU seconds of ``pid``'s threads: ``loop`` (the main thread, which runs the event
    loop) and ``rest`` (the inference thread and the runtime's worker threads: Python does
    not name OS threads, so they are not told apart)."""
    out = {"loop": 0.0, "rest": 0.0}
    tick = os.sysconf("SC_CLK_TCK")
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{tid}/stat") as stat:
                raw = stat.read()
        except OSError:
            continue  # the thread ended
        fields = raw.rsplit(")", 1)[1].split()
        seconds = (int(fields[11]) + int(fields[12])) / tick
        out["loop" if int(tid) == pid else "rest"] += seconds
    return out


def run_one(
    runtime: str,
    precision: str,
    concurrency: list[int],
    requests: dict[int, int],
    quick: bool,
    log: Path,
    extra: list[str],
) -> list[dict[str, Any]]:
    from modeldeploy.tools.checkpoints import build, load_split

    plan = QUICK if quick else FULL
    model_dir = build(plan.recipe)
    texts = list(load_split("test").texts)[: plan.max_texts]
    argv, ready_url, url = _predictor(model_dir, runtime, precision)
    proc, _ = _start([*argv, *extra], ready_url, log)
    results = []
    try:
        for c in concurrency:
            before, cpu_before = batch_totals(scrape(url)), thread_cpu(proc.pid)
            load = measure(url, texts, c, requests.get(c, plan.requests.get(c, 1000)))
            after, cpu_after = batch_totals(scrape(url)), thread_cpu(proc.pid)
            passes = after[1] - before[1]
            served = max(1, load.requests - load.errors - load.shed)
            results.append(
                {
                    **load.to_dict(),
                    "runtime": runtime,
                    "precision": precision,
                    "mean_rows_per_pass": round((after[0] - before[0]) / passes, 2)
                    if passes
                    else None,
                    "passes": int(passes),
                    "cpu_ms_per_request": {
                        k: round((cpu_after[k] - cpu_before[k]) * 1000 / served, 3)
                        for k in cpu_after
                    },
                    "load_average": [round(x, 2) for x in os.getloadavg()],
                }
            )
            print(json.dumps(results[-1]), flush=True)
    finally:
        _stop(proc)
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m modeldeploy.tools.bench.serving.one")
    parser.add_argument("--runtime", default="torch", choices=("torch", "onnx", "onnx-int8"))
    parser.add_argument("--precision", default="auto")
    parser.add_argument("--concurrency", default="1,16,64")
    parser.add_argument("--requests", type=int, help="per concurrency (default: the suite's)")
    parser.add_argument("--quick", action="store_true", help="tiny checkpoint (shape only)")
    parser.add_argument("--log", type=Path, default=Path("bench/serving-logs/one.log"))
    parser.add_argument("predictor_args", nargs="*", help="after --: more predictor options")
    args = parser.parse_args(argv)
    args.log.parent.mkdir(parents=True, exist_ok=True)
    levels = [int(c) for c in args.concurrency.split(",")]
    requests = {c: args.requests for c in levels} if args.requests else {}
    run_one(
        args.runtime,
        args.precision,
        levels,
        requests,
        args.quick,
        args.log,
        args.predictor_args,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
