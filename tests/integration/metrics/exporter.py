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

# One batch, per arm. The test module holds the same numbers as its expectations.
BATCH = {
    "stable": {
        "version": "1",
        "correct": {"feedback": (150, 25), "probe": (20, 5)},  # (right, wrong)
        "requests": {"ok": 1000, "error": 2, "bad_input": 5},
        "nan": 0,
        "latency": {"v1": [(0.020, 600)], "v2": [(0.020, 400), (0.050, 10)]},
    },
    "canary": {
        "version": "2",
        "correct": {"feedback": (140, 45), "probe": (10, 5)},
        "requests": {"ok": 990, "error": 10},
        "nan": 1,
        "latency": {"grpc": [(0.030, 1000)]},
    },
}
PAIRS = {"both_correct": 80, "stable_only": 12, "canary_only": 4, "both_wrong": 4}
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
        for protocol, observations in arm["latency"].items():
            for value, count in observations:
                for _ in range(count):
                    DURATION.labels(**labels, protocol=protocol).observe(value)
    for outcome, count in PAIRS.items():
        PAIRED.labels(DEPLOYMENT, "1", "2", "probe", outcome).inc(count)
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
