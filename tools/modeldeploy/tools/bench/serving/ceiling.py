"""The in-process ceiling: what one backend does with no server at all, in its own process.

``python -m modeldeploy.tools.bench.serving.ceiling --model-dir D --runtime R --precision P
--texts FILE`` prints one JSON object: held-out accuracy, the throughput over
length-sorted batches of each size (tokenization included, the best case a server can
approach at that batch size), the best of them and the best at batches of at most 16
(``c16_sentences_per_s``: at concurrency 16 no batch can be larger, so that is the ceiling
a server at concurrency 16 is compared with), the throughput on batches formed in arrival
order and planned as the predictor's batcher plans them (``batcher.plan_for``: split by
length, or one pass when the backend packs; with the per-pass
overhead fitted to this run's timed passes, ``pass_cost``), and the P50/P99 of one
sentence at a time (batch 1: the floor of a request's latency).
It uses the predictor's own backend classes and tokenizer, so the server is compared
with exactly what it runs, and the predictor's malloc settings (``allocator``: they raise
the in-process figure too, from about 600 to 840 sentences/s in bf16 on AMX) and its huge
pages for torch's large blocks (``THP_MEM_ALLOC_ENABLE``), but not its
``GOMP_SPINCOUNT`` (``startup.ENVIRONMENT``), which costs 3-6% in process: the
ceiling is the best this machine does without a server. A fresh process per
configuration keeps thread settings and allocator state from leaking between them.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

MEMORY_SETTINGS = ("THP_MEM_ALLOC_ENABLE",)
"""The predictor's environment defaults (``startup.ENVIRONMENT``) the ceiling shares: how
memory is laid out is not the server's doing, so the ceiling gets the same."""


def _backend(
    model_dir: Path, runtime: str, precision: str, threads: int, pack_row_tokens: int
) -> Any:
    from modeldeploy.serving.backends import onnx_backend

    if runtime == "torch":
        from modeldeploy.serving.backends.torch_backend import TorchBackend

        folder = onnx_backend.artifact_dir(model_dir)
        return TorchBackend(model_dir, threads, precision, "cpu", folder, pack_row_tokens)
    return onnx_backend.open_backend(model_dir, runtime, threads, pack_row_tokens)


def measure(
    model_dir: Path,
    runtime: str,
    precision: str,
    texts: list[str],
    labels: list[int],
    batch_sizes: tuple[int, ...],
    single: int,
    pack_row_tokens: int = 0,
    arrival_order: bool = True,
) -> dict[str, Any]:
    from modeldeploy.serving import codecs, loading
    from modeldeploy.serving.batcher import BatchingConfig, observe_pass, plan_for
    from modeldeploy.serving.passcost import PassCostModel

    threads = max(1, len(os.sched_getaffinity(0)))
    checkpoint = loading.inspect(model_dir)
    policy = codecs.TruncationPolicy(max_length=checkpoint.max_length)
    encoder = codecs.TextEncoder.from_directory(
        model_dir, policy, token_types=checkpoint.family == "bert"
    )
    backend = _backend(model_dir, runtime, precision, threads, pack_row_tokens)
    packs = bool(getattr(backend, "packs", False))

    # Every timed pass feeds the predictor's own per-pass cost model: its fit is this
    # runtime's overhead of a pass, which the arrival-order figure plans with (as a
    # predictor that has served a while does).
    cost = PassCostModel(BatchingConfig().pass_overhead_tokens)

    def classify(batch: list[str], timed: bool = False) -> np.ndarray:
        encoded = encoder.encode(batch)
        ids, mask = codecs.pad_batch([e.ids for e in encoded], encoder.pad_id)
        started = time.perf_counter()
        logits = backend.logits(ids, mask)
        if timed:
            observe_pass(cost, mask, time.perf_counter() - started, packs)
        return np.argmax(logits, axis=1)

    def classify_planned(batch: list[str]) -> None:
        encoded = encoder.encode(batch)
        lengths = [len(e.ids) for e in encoded]
        for group in plan_for(lengths, len(batch), cost.overhead_tokens(), packs):
            ids, mask = codecs.pad_batch([encoded[i].ids for i in group], encoder.pad_id)
            backend.logits(ids, mask)

    lengths = [len(e.ids) for e in encoder.encode(texts)]
    order = sorted(range(len(texts)), key=lambda i: lengths[i])
    throughput: dict[str, float] = {}
    counted: dict[str, int] = {}
    predicted = np.full(len(texts), -1, dtype=np.int64)
    for size in batch_sizes:
        # Below batch 8 every 4th sentence of the length order (the same length mix, a
        # quarter of the passes): one sentence at a time over all of them costs minutes.
        subset = order if size >= 8 else order[::4]
        # Untimed pass first: kernels (oneDNN/AMX, ORT) are created per (batch, length) shape
        # on first sight; a long-running server has them all, so the ceiling does too.
        for start in range(0, len(subset), size):
            classify([texts[i] for i in subset[start : start + size]])
        started = time.perf_counter()
        for start in range(0, len(subset), size):
            idx = subset[start : start + size]
            predicted[idx] = classify([texts[i] for i in idx], timed=True)
        throughput[str(size)] = round(len(subset) / (time.perf_counter() - started), 1)
        counted[str(size)] = len(subset)
    # What a server at concurrency C can form: C texts in arrival order (the load generator's
    # order), split into passes by length exactly as the predictor's batcher does.
    arrival: dict[str, float] = {}
    for size in sorted({min(16, max(batch_sizes)), max(batch_sizes)}) if arrival_order else []:
        chunks = [texts[start : start + size] for start in range(0, len(texts), size)]
        for timed in (False, True):
            started = time.perf_counter()
            for chunk in chunks:
                classify_planned(chunk)
            if timed:
                arrival[str(size)] = round(len(texts) / (time.perf_counter() - started), 1)
    latencies: list[float] = []
    for text in texts[:single]:
        started = time.perf_counter()
        classify([text])
        latencies.append((time.perf_counter() - started) * 1000)
    return {
        "runtime": backend.runtime,
        "layout": f"packed rows of {pack_row_tokens} tokens" if packs else "padded",
        "threads": threads,
        "traced": getattr(backend, "traced", None),
        "accuracy": round(float(np.mean(predicted == np.asarray(labels))), 4),
        "sentences_per_s": throughput,
        "sentences_timed": counted,
        "best_sentences_per_s": max(throughput.values()),
        "best_batch": int(max(throughput, key=lambda k: throughput[k])),
        # The ceiling a server at concurrency 16 can approach: no batch exceeds 16 there.
        "c16_sentences_per_s": max(v for k, v in throughput.items() if int(k) <= 16)
        if any(int(k) <= 16 for k in throughput)
        else None,
        "arrival_order_sentences_per_s": arrival,
        "pass_cost": _cost_figures(cost),
        "batch1_p50_ms": _percentile(latencies, 50),
        "batch1_p99_ms": _percentile(latencies, 99),
    }


def _percentile(values: list[float], q: float) -> float | None:
    return round(float(np.percentile(values, q)), 2) if values else None


def _cost_figures(cost: Any) -> dict[str, Any]:
    """The fitted cost of a pass (``fixed + per_slot x rows x width``) and its overhead."""
    fitted = cost.fit()
    return {
        "passes": cost.passes,
        "fixed_ms": round(fitted[0] * 1000, 3) if fitted else None,
        "per_slot_us": round(fitted[1] * 1e6, 4) if fitted else None,
        "overhead_tokens": cost.overhead_tokens(),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m modeldeploy.tools.bench.serving.ceiling")
    parser.add_argument("--model-dir", type=Path, required=True)
    parser.add_argument("--runtime", default="torch", choices=("torch", "onnx", "onnx-int8"))
    parser.add_argument("--precision", default="fp32", choices=("fp32", "bf16", "fp16"))
    parser.add_argument("--texts", type=Path, required=True, help='JSON {"texts", "labels"}')
    parser.add_argument("--batch-sizes", default="1,2,4,8,16,32,64")
    parser.add_argument("--single", type=int, default=200, help="sentences timed at batch 1")
    parser.add_argument("--pack-row-tokens", type=int, default=0, help="pack into rows (0: padded)")
    parser.add_argument(
        "--c16-only",
        action="store_true",
        help="only length-sorted batches of 16 and batch 1 (the paired rounds of run.py)",
    )
    args = parser.parse_args(argv)
    from modeldeploy.serving import allocator
    from modeldeploy.serving.startup import ENVIRONMENT

    allocator.keep_freed_memory()  # before the backend allocates anything
    for name in MEMORY_SETTINGS:  # before torch allocates its first large block
        os.environ.setdefault(name, ENVIRONMENT[name])
    data = json.loads(args.texts.read_text())
    sizes = (16,) if args.c16_only else tuple(int(s) for s in args.batch_sizes.split(","))
    result = measure(
        args.model_dir,
        args.runtime,
        args.precision,
        data["texts"],
        data["labels"],
        sizes,
        args.single,
        args.pack_row_tokens,
        arrival_order=not args.c16_only,
    )
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
