"""Every Prometheus collector of serving, in one place (docs/metrics.md).

Names, labels and buckets come from :mod:`modeldeploy.serving.contract`, which the
analysis side reads too; change them there, together with docs/metrics.md. Every
series carries ``deployment``, ``model_version`` and ``role``; :class:`ArmMetrics`
binds those once so the hot path never builds label dicts. Collectors are created
in a caller-supplied registry (the default one is what kserve's ``/metrics``
serves), so unit tests can use a fresh registry without clashing.
"""

from __future__ import annotations

import threading
import time
import weakref
from dataclasses import dataclass

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Histogram

from modeldeploy.serving.contract import names as n
from modeldeploy.serving.contract.latency import (
    DEFAULT_LATENCY_WARMUP_REQUESTS,
    latency_bucket_edges,
)
from modeldeploy.serving.gpu import GpuMeter, LogitsFn

COMMON_LABELS = n.COMMON_LABELS
PROTOCOLS = n.PROTOCOLS
OUTCOMES = n.REQUEST_OUTCOMES
FEEDBACK_REJECT_REASONS = n.FEEDBACK_REJECT_REASONS
PAIRED_LABELS = n.PAIRED_LABELS


def latency_buckets() -> tuple[float, ...]:
    """The contract's geometric latency edges (docs/metrics.md), without ``+Inf``."""
    return latency_bucket_edges()


TOKEN_BUCKETS = (4, 8, 16, 24, 32, 48, 64, 96, 128, 192, 256, 384, 512)
BATCH_BUCKETS = (1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 48, 64, 96, 128)
PASS_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.015, 0.02, 0.025, 0.03, 0.04, 0.05, 0.075, 0.1,
                0.25, 0.5, 1.0, 2.5)  # fmt: skip
"""Seconds per forward pass: a pass of one sentence takes about 2-10 ms on a CPU, a full
batch 20-100 ms; the fine steps around 10-50 ms show a pass that slowed by a tenth."""
CONFIDENCE_BUCKETS = (0.5, 0.55, 0.6, 0.65, 0.7, 0.75, 0.8, 0.85, 0.9, 0.95, 0.98, 0.99, 1.0)


@dataclass(frozen=True)
class Collectors:
    """The raw collectors (label names included), one instance per registry."""

    request_duration: Histogram
    requests: Counter
    nan_outputs: Counter
    tokenization_failures: Counter
    input_tokens: Histogram
    truncated_inputs: Counter
    batch_size: Histogram
    forward_pass_duration: Histogram
    predictions: Counter
    confidence: Histogram
    labelled_predictions: Counter
    feedback_rejected: Counter
    cpu_seconds: ProcessCpu
    gpu: ProcessGpu


class ProcessCpu:
    """``modeldeploy_cpu_seconds_total``: the process's own CPU time, read at scrape.

    ``time.process_time()`` (user + system, every thread: tokenizer, batcher, torch's
    pool) rather than the process collector's ``process_cpu_seconds_total``: that series has
    no ``deployment``/``model_version``/``role``, so cost per request would need a join on
    the scrape target, which differs between Kubernetes, local mode and Triton. One
    predictor process serves one arm, so its whole CPU time is that arm's cost, idle
    overhead included (it is paid for too).
    """

    def __init__(self) -> None:
        self._bound: list[tuple[str, ...]] = []

    def bind(self, labels: tuple[str, ...]) -> None:
        if labels not in self._bound:
            self._bound.append(labels)

    def collect(self):  # type: ignore[no-untyped-def]
        from prometheus_client.core import CounterMetricFamily

        family = CounterMetricFamily(
            n.CPU_SECONDS,
            "CPU seconds (user + system) the process serving this arm has used.",
            labels=COMMON_LABELS,
        )
        seconds = time.process_time()
        for labels in self._bound:
            family.add_metric(list(labels), seconds)
        return [family]


class ProcessGpu:
    """The GPU series of the process, read at scrape from its :class:`GpuMeter` (``gpu.py``).

    ``modeldeploy_gpu_allocated_seconds_total`` (GPUs held x wall seconds: what is billed),
    ``modeldeploy_gpu_busy_seconds_total`` (device time of the forward passes) and the gauge
    ``modeldeploy_gpu_devices``. A process that holds no GPU binds nothing and exports none
    of them: absent, not zero, so a CPU arm never shows as an idle GPU.
    """

    def __init__(self) -> None:
        self._bound: list[tuple[tuple[str, ...], GpuMeter]] = []

    def bind(self, labels: tuple[str, ...], meter: GpuMeter) -> None:
        if all(bound != labels for bound, _ in self._bound):
            self._bound.append((labels, meter))

    def collect(self):  # type: ignore[no-untyped-def]
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

        if not self._bound:
            return []
        allocated = CounterMetricFamily(
            n.GPU_ALLOCATED_SECONDS,
            "GPUs this process holds x wall seconds since it started (what is billed).",
            labels=COMMON_LABELS,
        )
        busy = CounterMetricFamily(
            n.GPU_BUSY_SECONDS,
            "Device seconds of this process's forward passes (launch to synchronize).",
            labels=COMMON_LABELS,
        )
        devices = GaugeMetricFamily(
            n.GPU_DEVICES, "GPUs this process holds (visible to it).", labels=COMMON_LABELS
        )
        for labels, meter in self._bound:
            allocated.add_metric(list(labels), meter.allocated_seconds())
            busy.add_metric(list(labels), meter.busy_seconds())
            devices.add_metric(list(labels), meter.count)
        return [allocated, busy, devices]


# Keyed by the registry itself, weakly: an ``id()`` key outlives its registry, and a new
# registry that gets the same id would be handed collectors registered in the dead one.
_BY_REGISTRY: weakref.WeakKeyDictionary[CollectorRegistry, Collectors] = weakref.WeakKeyDictionary()


def collectors(registry: CollectorRegistry = REGISTRY) -> Collectors:
    """The collectors registered in ``registry`` (created once per registry)."""
    key = registry
    if key not in _BY_REGISTRY:
        c = COMMON_LABELS
        _BY_REGISTRY[key] = Collectors(
            request_duration=Histogram(
                n.REQUEST_DURATION,
                "End-to-end request time, tokenization included.",
                (*c, n.PROTOCOL),
                buckets=latency_buckets(),
                registry=registry,
            ),
            requests=Counter(
                n.REQUESTS,
                "Requests by outcome.",
                (*c, n.OUTCOME),
                registry=registry,
            ),
            nan_outputs=Counter(
                n.NAN_OUTPUTS,
                "Responses whose logits contained NaN.",
                c,
                registry=registry,
            ),
            tokenization_failures=Counter(
                n.TOKENIZATION_FAILURES,
                "Inputs the tokenizer could not turn into readable model input, by reason.",
                (*c, n.REASON),
                registry=registry,
            ),
            input_tokens=Histogram(
                n.INPUT_TOKENS,
                "Tokens per input after truncation.",
                c,
                buckets=TOKEN_BUCKETS,
                registry=registry,
            ),
            truncated_inputs=Counter(
                n.TRUNCATED_INPUTS,
                "Inputs longer than max length (truncated).",
                c,
                registry=registry,
            ),
            batch_size=Histogram(
                n.BATCH_SIZE,
                "Items per model forward pass.",
                c,
                buckets=BATCH_BUCKETS,
                registry=registry,
            ),
            forward_pass_duration=Histogram(
                n.FORWARD_PASS_DURATION,
                "Wall time of each model forward pass (the model call alone).",
                c,
                buckets=PASS_BUCKETS,
                registry=registry,
            ),
            predictions=Counter(
                n.PREDICTIONS,
                "Predictions by class.",
                (*c, n.LABEL),
                registry=registry,
            ),
            confidence=Histogram(
                n.PREDICTION_CONFIDENCE,
                "Top-class probability.",
                c,
                buckets=CONFIDENCE_BUCKETS,
                registry=registry,
            ),
            labelled_predictions=Counter(
                n.LABELLED_PREDICTIONS,
                "Predictions joined to a true label.",
                (*c, n.SOURCE, n.CORRECT),
                registry=registry,
            ),
            feedback_rejected=Counter(
                n.FEEDBACK_REJECTED,
                "Feedback that could not be joined.",
                (*c, n.REASON),
                registry=registry,
            ),
            cpu_seconds=ProcessCpu(),
            gpu=ProcessGpu(),
        )
        registry.register(_BY_REGISTRY[key].cpu_seconds)  # type: ignore[arg-type]
        registry.register(_BY_REGISTRY[key].gpu)  # type: ignore[arg-type]
    return _BY_REGISTRY[key]


class ArmMetrics:
    """The collectors of one arm, with its common labels bound once.

    Every child is created here, so each series exists (at 0) from the first
    scrape: a rate over a series that appears late reads as missing data, not zero.

    The first ``latency_warmup_requests`` requests of the process are counted in
    ``modeldeploy_requests_total`` but not observed in the latency histogram: a fresh
    canary's slow first requests (lazy initialisation) would otherwise sit in its P99.

    ``gpu``: the process's GPU meter (``gpu.meter_for``), None when it holds no GPU.
    """

    def __init__(
        self,
        deployment: str,
        model_version: str,
        role: str,
        labels: list[str],
        registry: CollectorRegistry = REGISTRY,
        latency_warmup_requests: int = DEFAULT_LATENCY_WARMUP_REQUESTS,
        gpu: GpuMeter | None = None,
    ) -> None:
        if latency_warmup_requests < 0:
            raise ValueError("latency_warmup_requests must not be negative")
        self.latency_warmup_requests = latency_warmup_requests
        self._seen = 0
        self._warm = latency_warmup_requests == 0
        self._seen_lock = threading.Lock()  # gRPC and REST requests may finish on two threads
        col = collectors(registry)
        base = {"deployment": deployment, "model_version": model_version, "role": role}
        self.base_labels = base
        self._duration = {p: col.request_duration.labels(**base, protocol=p) for p in PROTOCOLS}
        self._requests = {o: col.requests.labels(**base, outcome=o) for o in OUTCOMES}
        self.nan_outputs = col.nan_outputs.labels(**base)
        self._tokenization_failures = {
            r: col.tokenization_failures.labels(**base, reason=r)
            for r in n.TOKENIZATION_FAILURE_REASONS
        }
        self.input_tokens = col.input_tokens.labels(**base)
        self.truncated_inputs = col.truncated_inputs.labels(**base)
        self.batch_size = col.batch_size.labels(**base)
        self.forward_pass_duration = col.forward_pass_duration.labels(**base)
        self._predictions = {name: col.predictions.labels(**base, label=name) for name in labels}
        self.confidence = col.confidence.labels(**base)
        self._labelled = {
            (s, k): col.labelled_predictions.labels(**base, source=s, correct=k)
            for s in n.LABEL_SOURCES
            for k in n.BOOLEAN_VALUES
        }
        self._rejected = {
            r: col.feedback_rejected.labels(**base, reason=r) for r in FEEDBACK_REJECT_REASONS
        }
        col.cpu_seconds.bind((deployment, model_version, role))
        self.gpu = gpu
        if gpu is not None:
            col.gpu.bind((deployment, model_version, role), gpu)

    def timed_forward(self, logits: LogitsFn) -> LogitsFn:
        """``logits`` with its device time counted in the GPU busy seconds (as is on CPU)."""
        return logits if self.gpu is None else self.gpu.timed(logits)

    def observe_request(self, protocol: str, outcome: str, seconds: float) -> None:
        """Count one finished request; time it unless it is one of the warm-up requests."""
        warming_up = False
        if not self._warm:  # no lock once warm: the hot path of every request
            with self._seen_lock:
                self._seen += 1
                warming_up = self._seen <= self.latency_warmup_requests
                self._warm = self._seen >= self.latency_warmup_requests
        if not warming_up:
            self._duration[protocol].observe(seconds)
        self._requests[outcome].inc()

    def tokenization_failure(self, reason: str) -> None:
        """Count one input under ``reason`` (``contract.names.TOKENIZATION_FAILURE_REASONS``)."""
        self._tokenization_failures[reason].inc()

    def observe_prediction(self, label: str, confidence: float) -> None:
        self._predictions[label].inc()
        self.confidence.observe(confidence)

    def observe_labelled(self, source: str, correct: bool) -> None:
        self._labelled[(source, "true" if correct else "false")].inc()

    def reject_feedback(self, reason: str) -> None:
        self._rejected[reason].inc()


def paired_outcomes_counter(registry: CollectorRegistry) -> Counter:
    """``modeldeploy_paired_outcomes_total``: one labelled input scored by both arms.

    Emitted by the router (``source="feedback"``) and the prober (``source="probe"``), each
    into its own registry; ``outcome`` is one of ``contract.names.PAIRED_OUTCOMES``.
    """
    return Counter(
        n.PAIRED_OUTCOMES_TOTAL,
        "Labelled inputs scored by both arms, by which arm was right.",
        PAIRED_LABELS,
        registry=registry,
    )
