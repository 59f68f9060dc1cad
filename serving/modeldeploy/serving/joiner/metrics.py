"""The joiner's Prometheus series, in its own registry (docs/metrics.md, "The joiner").

The two the analysis reads are the contract's, with the contract's labels:
``modeldeploy_labelled_predictions_total{deployment, model_version, role, source, correct}``
and ``modeldeploy_paired_outcomes_total{deployment, stable_version, canary_version, source,
outcome}``. On KServe the predictors leave labels to the joiner, so these are counted once.
With sampled pairing on, a third: ``modeldeploy_paired_predictions_total{deployment,
stable_version, canary_version, stable_label, canary_label}``, one per unlabelled item both
arms scored because the joiner drew it (the drift checks' paired evidence; local mode's
router counts the same series for its paired requests).
The rest say what the joiner did with what it was sent.
"""

from __future__ import annotations

from collections.abc import Callable

from prometheus_client import CollectorRegistry, Counter, Gauge, ProcessCollector

from modeldeploy.serving.contract import names as n
from modeldeploy.serving.joiner.book import Counted

EVENTS = "modeldeploy_joiner_events_total"
EVENT_OUTCOMES = (
    "input",  # a request body kept for pairing
    "recorded",
    "duplicate",  # first write wins per (id, arm)
    "not_issued",
    "wrong_arm",
    "expired",
    "conflict",
    "bad_event",
    "ignored",  # not the predictor component, or an unreadable (binary) body
)
FEEDBACK = "modeldeploy_joiner_feedback_total"
FEEDBACK_OUTCOMES = ("counted", "unknown_id", "expired", "duplicate", "bad_input",
                     *n.AUTH_REJECT_REASONS)  # fmt: skip
RESCORES = "modeldeploy_joiner_rescores_total"
RESCORE_OUTCOMES = ("paired", "over_budget", "no_input", "no_arms", "failed", "wrong_version")
PAIR_SAMPLES = "modeldeploy_joiner_pair_samples_total"
PAIR_SHARE = "modeldeploy_joiner_pair_share_ratio"
STATE_FILE_ERRORS = "modeldeploy_joiner_state_file_errors_total"
STATE_FILE_OPERATIONS = ("write", "commit", "pruning")
PAIR_SAMPLE_OUTCOMES = (
    "paired",  # re-scored on the other arm and counted in the paired predictions
    "over_budget",  # drawn, but the pair rate was spent: left unpaired
    "no_input",  # the request's body was not kept (binary, too large, or not logged yet)
    "no_arms",  # the arms file names no other arm for the deployment
    "failed",
    "wrong_version",
    "busy",  # a re-score of the same request (for its label) was already running
)


class JoinerMetrics:
    """Every series of one joiner process; each child exists (at 0) from the start."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        # process_start_time_seconds: the scrape provider sees a restart (counters reset).
        ProcessCollector(registry=r)
        self._labelled = Counter(
            n.LABELLED_PREDICTIONS, "Predictions joined to a true label.",
            (*n.COMMON_LABELS, n.SOURCE, n.CORRECT), registry=r,
        )  # fmt: skip
        self._paired = Counter(
            n.PAIRED_OUTCOMES_TOTAL,
            "Labelled inputs scored by both arms, by which arm was right.",
            n.PAIRED_LABELS,
            registry=r,
        )
        self._events = _seeded(r, EVENTS, "Inference-logger events by outcome.", EVENT_OUTCOMES)
        self._feedback = _seeded(r, FEEDBACK, "Label posts by outcome.", FEEDBACK_OUTCOMES)
        self._rescores = _seeded(
            r, RESCORES, "Pairing on label: re-scores on the other arm by outcome.",
            RESCORE_OUTCOMES,
        )  # fmt: skip
        self._samples = _seeded(
            r, PAIR_SAMPLES,
            "Sampled pairing: unlabelled responses drawn for a re-score on the other arm, by"
            " outcome.",
            PAIR_SAMPLE_OUTCOMES,
        )  # fmt: skip
        self._pair_share = Gauge(
            PAIR_SHARE,
            "Sampled pairing: the share of unlabelled responses drawn now (below --pair-share"
            " where the traffic outruns --pair-rate).",
            registry=r,
        )
        self._paired_predictions = Counter(
            n.PAIRED_PREDICTIONS,
            "Unlabelled inputs both arms scored (sampled pairing), by what each predicted.",
            n.PAIRED_PREDICTION_LABELS,
            registry=r,
        )
        self._state_errors = _seeded(
            r, STATE_FILE_ERRORS,
            "Writes to the joiner's state file (--state-file) that failed; the book went on "
            "in memory, and a restart would forget what they held.",
            STATE_FILE_OPERATIONS, label="operation",
        )  # fmt: skip
        self._entries = Gauge(n.STORE_ENTRIES, "Entries in the bounded id store.",
                              n.STORE_LABELS, registry=r)  # fmt: skip
        self._bytes = Gauge(
            n.STORE_BYTES, "Estimated bytes of the bounded id store (entries and tombstones).",
            n.STORE_LABELS, registry=r,
        )  # fmt: skip

    @property
    def contract_counters(self) -> tuple[Counter, Counter]:
        """(labelled predictions, paired outcomes): the prober in this process counts its
        probes in them too (``source="probe"``), so there is one of each on /metrics."""
        return self._labelled, self._paired

    def watch_store(self, entries: Callable[[], float], size: Callable[[], float]) -> None:
        self._entries.labels("", "joiner").set_function(entries)
        self._bytes.labels("", "joiner").set_function(size)

    def state_file_error(self, operation: str) -> None:
        self._state_errors.labels(operation).inc()

    def event(self, outcome: str) -> None:
        self._events.labels(outcome).inc()

    def feedback(self, outcome: str) -> None:
        self._feedback.labels(outcome).inc()

    def rescore(self, outcome: str) -> None:
        self._rescores.labels(outcome).inc()

    def watch_pair_share(self, share: Callable[[], float]) -> None:
        self._pair_share.set_function(share)

    def pair_sample(self, outcome: str) -> None:
        self._samples.labels(outcome).inc()

    def paired_prediction(
        self,
        deployment: str,
        stable_version: str,
        canary_version: str,
        stable_label: str,
        canary_label: str,
    ) -> None:
        """One unlabelled item both arms scored (the drift checks' paired evidence)."""
        self._paired_predictions.labels(
            deployment, stable_version, canary_version, stable_label, canary_label
        ).inc()

    def counted(self, deployment: str, source: str, counted: Counted) -> None:
        for role, version, correct in counted.arms:
            self._labelled.labels(deployment, version, role, source, str(correct).lower()).inc()
        for stable_version, canary_version, outcome in counted.pairs:
            self._paired.labels(deployment, stable_version, canary_version, source, outcome).inc()


def _seeded(
    registry: CollectorRegistry,
    name: str,
    documentation: str,
    values: tuple[str, ...],
    label: str = "outcome",
) -> Counter:
    """A counter by one label whose every value is exported from the start (at 0), so
    ``increase()`` and alerts see the first event of each."""
    counter = Counter(name, documentation, [label], registry=registry)
    for value in values:
        counter.labels(value)
    return counter
