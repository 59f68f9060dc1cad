"""Names of every series the analysis reads and the router exports, and their label values.

The serving side creates its collectors from these constants and the analysis side
(scrape and Prometheus providers) selects on them, so a rename is one edit here plus
docs/metrics.md. Counter constants carry the ``_total`` suffix that is exported (and that
PromQL sees); ``prometheus_client`` accepts it and strips it from the family name.
"""

from __future__ import annotations

# --- label names ----------------------------------------------------------------------

DEPLOYMENT = "deployment"
MODEL_VERSION = "model_version"
ROLE = "role"
PROTOCOL = "protocol"
OUTCOME = "outcome"
SOURCE = "source"
CORRECT = "correct"
LABEL = "label"
REASON = "reason"
STABLE_VERSION = "stable_version"
CANARY_VERSION = "canary_version"
SHADOW_VERSION = "shadow_version"
PURPOSE = "purpose"
AGREE = "agree"
COMPONENT = "component"
STATUS = "status"
LE = "le"

COMMON_LABELS = (DEPLOYMENT, MODEL_VERSION, ROLE)
"""On every per-arm series: which rollout, which version, which arm."""

# --- label values ---------------------------------------------------------------------

STABLE, CANARY, SHADOW = "stable", "canary", "shadow"
ROLES = (STABLE, CANARY, SHADOW)
CANARY_ROLES = (CANARY, SHADOW)
"""Roles whose series count as the candidate arm in the analysis."""
PROTOCOLS = ("v1", "v2", "grpc")
REQUEST_OUTCOMES = ("ok", "bad_input", "error")
LABEL_SOURCES = ("feedback", "probe")
AUTH_REJECT_REASONS = ("unauthenticated", "forbidden", "rate_limited", "not_issued", "wrong_arm")
"""Label refusals of authentication: no credential, a wrong one, over the credential's rate,
an id the platform never issued, an id another arm issued. None of them touches a count."""
FEEDBACK_REJECT_REASONS = ("unknown_id", "expired", "duplicate", "bad_input", *AUTH_REJECT_REASONS)
PAIRED_OUTCOMES = ("both_correct", "stable_only", "canary_only", "both_wrong")
"""Order matters: the analysis keeps paired counts as a tuple in this order."""
BOOLEAN_VALUES = ("true", "false")
TOKENIZATION_FAILURE_REASONS = ("empty", "over_limit", "unknown_tokens", "error")
"""The ``reason`` of ``modeldeploy_tokenization_failures_total``, one count per input:
``empty``: no content token left after the tokenizer's normalisation (only [CLS]/[SEP]);
``over_limit``: more tokens than the model's max length, whether the policy then truncated it
(also counted in ``modeldeploy_truncated_inputs_total``) or refused it; ``unknown_tokens``: more
than ``UNKNOWN_TOKEN_SHARE_LIMIT`` of the content tokens are the unknown token; ``error``: the
tokenizer raised. One input may count under several reasons."""
UNKNOWN_TOKEN_SHARE_LIMIT = 0.25
"""Share of [UNK] among an input's content tokens above which it counts as ``unknown_tokens``:
a quarter of the words unreadable is text the model was not trained on (another script,
emoji-only, binary noise), not a typo."""

# --- per-arm serving series (the predictor) ---------------------------------------------

REQUEST_DURATION = "modeldeploy_request_duration_seconds"
REQUEST_DURATION_BUCKET = REQUEST_DURATION + "_bucket"
REQUESTS = "modeldeploy_requests_total"
NAN_OUTPUTS = "modeldeploy_nan_outputs_total"
TOKENIZATION_FAILURES = "modeldeploy_tokenization_failures_total"
INPUT_TOKENS = "modeldeploy_input_tokens"
TRUNCATED_INPUTS = "modeldeploy_truncated_inputs_total"
BATCH_SIZE = "modeldeploy_batch_size"
FORWARD_PASS_DURATION = "modeldeploy_forward_pass_duration_seconds"
"""Wall time of each forward pass (the model call alone: no tokenizing, no queueing); with
``modeldeploy_batch_size`` and the request rate it tells a slow model from a server that
leaves the model idle between passes."""
PREDICTIONS = "modeldeploy_predictions_total"
PREDICTION_CONFIDENCE = "modeldeploy_prediction_confidence"
PREDICTION_CONFIDENCE_BUCKET = PREDICTION_CONFIDENCE + "_bucket"
INPUT_TOKENS_BUCKET = INPUT_TOKENS + "_bucket"
LABELLED_PREDICTIONS = "modeldeploy_labelled_predictions_total"
FEEDBACK_REJECTED = "modeldeploy_feedback_rejected_total"
CPU_SECONDS = "modeldeploy_cpu_seconds_total"
"""CPU time of the process serving the arm (user + system, all threads), from its own
accounting; with ``modeldeploy_requests_total`` it gives CPU seconds per request."""
GPU_ALLOCATED_SECONDS = "modeldeploy_gpu_allocated_seconds_total"
"""GPUs the process serving the arm holds x wall seconds (a GPU is billed while allocated);
absent on a process that holds no GPU."""
GPU_BUSY_SECONDS = "modeldeploy_gpu_busy_seconds_total"
"""Device seconds of the arm's forward passes; busy / allocated is the GPU utilisation."""
GPU_DEVICES = "modeldeploy_gpu_devices"
"""Gauge: GPUs the process serving the arm holds (should equal its ``nvidia.com/gpu``)."""

# --- errors of the process itself (predictor and router) -----------------------------

SERVER_ERRORS = "modeldeploy_server_errors_total"
SERVER_ERROR_LABELS = (DEPLOYMENT, COMPONENT, STATUS)
"""5xx answers a process produced itself (an upstream's 5xx passed on by the router is not
one: that is ``modeldeploy_router_upstream_errors_total``)."""
COMPONENTS = ("predictor", "router")
STORE_ENTRIES = "modeldeploy_store_entries"
STORE_BYTES = "modeldeploy_store_estimated_bytes"
STORE_LABELS = (DEPLOYMENT, COMPONENT)
"""Size of a process's bounded id store (the predictor's feedback store), read at scrape."""

# --- per-pair series (router and prober) ----------------------------------------------

PAIRED_OUTCOMES_TOTAL = "modeldeploy_paired_outcomes_total"
PAIRED_LABELS = (DEPLOYMENT, STABLE_VERSION, CANARY_VERSION, SOURCE, OUTCOME)
STABLE_LABEL = "stable_label"
CANARY_LABEL = "canary_label"
PAIRED_PREDICTIONS = "modeldeploy_paired_predictions_total"
PAIRED_PREDICTION_LABELS = (DEPLOYMENT, STABLE_VERSION, CANARY_VERSION, STABLE_LABEL, CANARY_LABEL)
"""Unlabelled inputs both arms scored (the router's paired share), by what each predicted."""

# --- the router's own series ----------------------------------------------------------

ROUTER_REQUESTS = "modeldeploy_router_requests_total"
ROUTER_UPSTREAM_ERRORS = "modeldeploy_router_upstream_errors_total"
ROUTER_SHADOW_COMPARISONS = "modeldeploy_router_shadow_comparisons_total"
ROUTER_FEEDBACK = "modeldeploy_router_feedback_total"
ROUTER_CANARY_WEIGHT = "modeldeploy_router_canary_weight_ratio"
ROUTER_PAIRED_SHARE = "modeldeploy_router_paired_share_ratio"
ROUTER_PURPOSES = ("primary", "paired", "mirror")
ROUTER_UPSTREAM_ERROR_REASONS = ("connect", "timeout", "status_5xx")
ROUTER_FEEDBACK_OUTCOMES = (
    "forwarded",
    "unknown_id",
    "expired",
    "duplicate",
    "bad_input",
    "upstream_error",
    *AUTH_REJECT_REASONS,
)

# --- load shedding (the predictor's batcher) -------------------------------------------

SHED_REQUESTS = "modeldeploy_shed_requests_total"
"""Requests refused with 503 + Retry-After because the inference queue was full (per arm).
They are also in ``modeldeploy_requests_total{outcome="error"}``; this says why."""

# --- what the analysis reads ----------------------------------------------------------

ANALYSIS_ARM_SERIES = (
    LABELLED_PREDICTIONS,
    REQUESTS,
    NAN_OUTPUTS,
    REQUEST_DURATION_BUCKET,
    CPU_SECONDS,
    GPU_ALLOCATED_SECONDS,
    GPU_BUSY_SECONDS,
)
"""Per-arm series the analysis selects (one Prometheus query covers all of them).
``CPU_SECONDS`` and the two GPU counters feed no check: the operator reports cost per 1k
inferences from them."""
DRIFT_ARM_SERIES = (
    PREDICTIONS,
    PREDICTION_CONFIDENCE_BUCKET,
    INPUT_TOKENS_BUCKET,
    TRUNCATED_INPUTS,
)
"""Per-arm label-free series the drift checks read (same query as the above)."""
DRIFT_PAIR_SERIES = (PAIRED_PREDICTIONS, ROUTER_SHADOW_COMPARISONS)
"""Per-pair label-free series: whether both arms predicted the same class."""


def paired_outcome(stable_correct: bool, canary_correct: bool) -> str:
    """The ``outcome`` label of ``modeldeploy_paired_outcomes_total`` for one labelled item."""
    if stable_correct and canary_correct:
        return "both_correct"
    if stable_correct:
        return "stable_only"
    if canary_correct:
        return "canary_only"
    return "both_wrong"
