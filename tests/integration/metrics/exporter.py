"""A stand-in serving process: exports the docs/metrics.md series at known values.

Run as ``python exporter.py PORT CONTROL_DIR``. It applies ``BATCH`` once at start; each
time a file named ``bump`` appears in CONTROL_DIR it applies ``BATCH`` again and deletes
the file, so a test can move the counters by a known amount while Prometheus watches.
The names, labels and buckets are exactly the contract's, written out here on purpose
(not imported from the operator) so a drift on either side fails the test.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

from prometheus_client import Counter, Histogram, start_http_server

BUCKETS = [0.005 * 1.1**k for k in range(50)] + [1.0, 2.5, 5.0, 10.0]
ARM = ["deployment", "model_version", "role"]

DURATION = Histogram(
    "modeldeploy_request_duration_seconds",
    "end-to-end request time",
    [*ARM, "protocol"],
    buckets=BUCKETS,
)
REQUESTS = Counter("modeldeploy_requests_total", "requests by outcome", [*ARM, "outcome"])
NAN = Counter("modeldeploy_nan_outputs_total", "NaN outputs", ARM)
LABELLED = Counter(
    "modeldeploy_labelled_predictions_total", "labelled", [*ARM, "source", "correct"]
)
PAIRED = Counter(
    "modeldeploy_paired_outcomes_total",
    "paired outcomes",
    ["deployment", "stable_version", "canary_version", "source", "outcome"],
)
PREDICTIONS = Counter("modeldeploy_predictions_total", "predictions by class", [*ARM, "label"])
CONFIDENCE = Histogram(
    "modeldeploy_prediction_confidence",
    "top-class probability",
    ARM,
    buckets=(0.5, 0.55, 0.6, 0.65, 0.7, 0.75, 0.8, 0.85, 0.9, 0.95, 0.98, 0.99, 1.0),
)
TRUNCATED = Counter("modeldeploy_truncated_inputs_total", "truncated inputs", ARM)
PAIRED_PREDICTIONS = Counter(
    "modeldeploy_paired_predictions_total",
    "inputs both arms scored, by predicted class",
    ["deployment", "stable_version", "canary_version", "stable_label", "canary_label"],
)
GPU_ALLOCATED = Counter("modeldeploy_gpu_allocated_seconds_total", "GPUs held x wall seconds", ARM)
GPU_BUSY = Counter("modeldeploy_gpu_busy_seconds_total", "device seconds of forward passes", ARM)

# One batch, per arm. The test module holds the same numbers as its expectations.
BATCH = {
    "stable": {
        "version": "1",
        "correct": {"feedback": (150, 25), "probe": (20, 5)},  # (right, wrong)
        "requests": {"ok": 1000, "error": 2, "bad_input": 5},
        "nan": 0,
        "latency": {"v1": [(0.020, 600)], "v2": [(0.020, 400), (0.050, 10)]},
        "predicted": {"negative": 500, "positive": 500},
        "confidence": [(0.97, 1000)],
        "truncated": 3,
        "gpu": (7200.0, 450.5),  # (allocated, busy): stable holds GPUs, the canary does not
    },
    "canary": {
        "version": "2",
        "correct": {"feedback": (140, 45), "probe": (10, 5)},
        "requests": {"ok": 990, "error": 10},
        "nan": 1,
        "latency": {"grpc": [(0.030, 1000)]},
        "predicted": {"negative": 400, "positive": 600},
        "confidence": [(0.97, 700), (0.62, 300)],
        "truncated": 3,
    },
}
PAIRS = {"both_correct": 80, "stable_only": 12, "canary_only": 4, "both_wrong": 4}
PAIRED_ANSWERS = {("negative", "negative"): 40, ("negative", "positive"): 10}
PAIRED_ANSWERS[("positive", "positive")] = 50
DEPLOYMENT = "demo"


def apply_batch() -> None:
    for role, arm in BATCH.items():
        labels = {"deployment": DEPLOYMENT, "model_version": arm["version"], "role": role}
        for source, (right, wrong) in arm["correct"].items():
            LABELLED.labels(**labels, source=source, correct="true").inc(right)
            LABELLED.labels(**labels, source=source, correct="false").inc(wrong)
        for outcome, count in arm["requests"].items():
            REQUESTS.labels(**labels, outcome=outcome).inc(count)
        NAN.labels(**labels).inc(arm["nan"])
        for label, count in arm["predicted"].items():
            PREDICTIONS.labels(**labels, label=label).inc(count)
        for value, count in arm["confidence"]:
            for _ in range(count):
                CONFIDENCE.labels(**labels).observe(value)
        TRUNCATED.labels(**labels).inc(arm["truncated"])
        if "gpu" in arm:
            allocated, busy = arm["gpu"]
            GPU_ALLOCATED.labels(**labels).inc(allocated)
            GPU_BUSY.labels(**labels).inc(busy)
        for protocol, observations in arm["latency"].items():
            for value, count in observations:
                for _ in range(count):
                    DURATION.labels(**labels, protocol=protocol).observe(value)
    for outcome, count in PAIRS.items():
        PAIRED.labels(DEPLOYMENT, "1", "2", "probe", outcome).inc(count)
    for (stable_label, canary_label), count in PAIRED_ANSWERS.items():
        PAIRED_PREDICTIONS.labels(DEPLOYMENT, "1", "2", stable_label, canary_label).inc(count)
    # another deployment's series, which the providers must ignore
    REQUESTS.labels("other", "1", "stable", "ok").inc(7)


def main() -> None:
    port, control = int(sys.argv[1]), Path(sys.argv[2])
    apply_batch()
    start_http_server(port, addr="127.0.0.1")
    while True:
        bump = control / "bump"
        if bump.exists():
            apply_batch()
            bump.unlink()
        time.sleep(0.05)


if __name__ == "__main__":
    main()
