"""Every Prometheus collector of serving, in one place (docs/metrics.md).

Names, labels and buckets here are a contract with the analysis side: change them
only together with docs/metrics.md. Every series carries ``deployment``,
``model_version`` and ``role``; :class:`ArmMetrics` binds those once so the hot
path never builds label dicts. Collectors are created in a caller-supplied
registry (the default one is what kserve's ``/metrics`` serves), so unit tests can
use a fresh registry without clashing.
"""

from __future__ import annotations

from dataclasses import dataclass

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Histogram

COMMON_LABELS = ("deployment", "model_version", "role")
PROTOCOLS = ("v1", "v2", "grpc")
OUTCOMES = ("ok", "bad_input", "error")
FEEDBACK_REJECT_REASONS = ("unknown_id", "expired", "duplicate", "bad_input")
PAIRED_LABELS = ("deployment", "stable_version", "canary_version", "source", "outcome")


LATENCY_START_S = 0.005
LATENCY_RATIO = 1.1
LATENCY_GEOMETRIC_BOUNDS = 50  # 5 ms ... 533.6 ms: the last bucket that matters ends past 500 ms


def latency_buckets() -> tuple[float, ...]:
    """Geometric from 5 ms with ratio 1.1 (50 bounds, 5 ms ... 533.6 ms), then 1, 2.5, 5, 10 s.

    A ratio of 1.1 means a bucket is at most 10% wide relative to its lower bound, so an
    interpolated quantile anywhere in 5-500 ms is within 10% of the true value. 49 bounds
    would stop at 485 ms and leave 485-1000 ms as one bucket; the 50th closes that gap.
    """
    bounds = [round(LATENCY_START_S * LATENCY_RATIO**i, 6) for i in range(LATENCY_GEOMETRIC_BOUNDS)]
    return (*bounds, 1.0, 2.5, 5.0, 10.0)


TOKEN_BUCKETS = (4, 8, 16, 24, 32, 48, 64, 96, 128, 192, 256, 384, 512)
BATCH_BUCKETS = (1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 48, 64, 96, 128)
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
    predictions: Counter
    confidence: Histogram
    labelled_predictions: Counter
    feedback_rejected: Counter


_BY_REGISTRY: dict[int, Collectors] = {}


def collectors(registry: CollectorRegistry = REGISTRY) -> Collectors:
    """The collectors registered in ``registry`` (created once per registry)."""
    key = id(registry)
    if key not in _BY_REGISTRY:
        c = COMMON_LABELS
        _BY_REGISTRY[key] = Collectors(
            request_duration=Histogram(
                "modeldeploy_request_duration_seconds",
                "End-to-end request time, tokenization included.",
                (*c, "protocol"),
                buckets=latency_buckets(),
                registry=registry,
            ),
            requests=Counter(
                "modeldeploy_requests",
                "Requests by outcome.",
                (*c, "outcome"),
                registry=registry,
            ),
            nan_outputs=Counter(
                "modeldeploy_nan_outputs",
                "Responses whose logits contained NaN.",
                c,
                registry=registry,
            ),
            tokenization_failures=Counter(
                "modeldeploy_tokenization_failures",
                "Inputs the tokenizer could not encode.",
                c,
                registry=registry,
            ),
            input_tokens=Histogram(
                "modeldeploy_input_tokens",
                "Tokens per input after truncation.",
                c,
                buckets=TOKEN_BUCKETS,
                registry=registry,
            ),
            truncated_inputs=Counter(
                "modeldeploy_truncated_inputs",
                "Inputs longer than max length (truncated).",
                c,
                registry=registry,
            ),
            batch_size=Histogram(
                "modeldeploy_batch_size",
                "Items per model forward pass.",
                c,
                buckets=BATCH_BUCKETS,
                registry=registry,
            ),
            predictions=Counter(
                "modeldeploy_predictions",
                "Predictions by class.",
                (*c, "label"),
                registry=registry,
            ),
            confidence=Histogram(
                "modeldeploy_prediction_confidence",
                "Top-class probability.",
                c,
                buckets=CONFIDENCE_BUCKETS,
                registry=registry,
            ),
            labelled_predictions=Counter(
                "modeldeploy_labelled_predictions",
                "Predictions joined to a true label.",
                (*c, "source", "correct"),
                registry=registry,
            ),
            feedback_rejected=Counter(
                "modeldeploy_feedback_rejected",
                "Feedback that could not be joined.",
                (*c, "reason"),
                registry=registry,
            ),
        )
    return _BY_REGISTRY[key]


class ArmMetrics:
    """The collectors of one arm, with its common labels bound once.

    Every child is created here, so each series exists (at 0) from the first
    scrape: a rate over a series that appears late reads as missing data, not zero.
    """

    def __init__(
        self,
        deployment: str,
        model_version: str,
        role: str,
        labels: list[str],
        registry: CollectorRegistry = REGISTRY,
    ) -> None:
        col = collectors(registry)
        base = {"deployment": deployment, "model_version": model_version, "role": role}
        self.base_labels = base
        self._duration = {p: col.request_duration.labels(**base, protocol=p) for p in PROTOCOLS}
        self._requests = {o: col.requests.labels(**base, outcome=o) for o in OUTCOMES}
        self.nan_outputs = col.nan_outputs.labels(**base)
        self.tokenization_failures = col.tokenization_failures.labels(**base)
        self.input_tokens = col.input_tokens.labels(**base)
        self.truncated_inputs = col.truncated_inputs.labels(**base)
        self.batch_size = col.batch_size.labels(**base)
        self._predictions = {name: col.predictions.labels(**base, label=name) for name in labels}
        self.confidence = col.confidence.labels(**base)
        self._labelled = {
            (s, k): col.labelled_predictions.labels(**base, source=s, correct=k)
            for s in ("feedback", "probe")
            for k in ("true", "false")
        }
        self._rejected = {
            r: col.feedback_rejected.labels(**base, reason=r) for r in FEEDBACK_REJECT_REASONS
        }

    def observe_request(self, protocol: str, outcome: str, seconds: float) -> None:
        self._duration[protocol].observe(seconds)
        self._requests[outcome].inc()

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
    into its own registry; ``outcome`` is one of ``router.pairing.PAIRED_OUTCOMES``.
    """
    return Counter(
        "modeldeploy_paired_outcomes",
        "Labelled inputs scored by both arms, by which arm was right.",
        PAIRED_LABELS,
        registry=registry,
    )
