"""What the operator and a Triton predictor agree on (importable without Triton or torch).

Triton's Python backend (``serving/triton/backend_model.py``) cannot import this package, so
it repeats these values; ``tests/unit/serving/test_triton_contract.py`` keeps them equal.
"""

from __future__ import annotations

TRITON_METRICS_ARGS: tuple[str, ...] = (
    "--metrics-config=summary_latencies=true",
    "--metrics-config=summary_quantiles=0.5:0.05,0.9:0.01,0.95:0.005,0.99:0.001",
)
"""Server flags for Triton's own latency summaries, next to the ``modeldeploy_*`` series the
backend exports (Triton 2.51 has no per-request latency histogram of its own)."""

ENV_DEPLOYMENT = "MODELDEPLOY_DEPLOYMENT"
"""The ModelDeployment a Triton pod serves: the ``deployment`` label of its metrics."""

ENV_ROLE = "MODELDEPLOY_ROLE"
"""``stable`` or ``canary``: the ``role`` label the analysis splits the arms by."""

ENV_RESPONSE_DETAIL = "MODELDEPLOY_RESPONSE_DETAIL"
"""``spec.serving.responseDetail``: ``full`` adds ``PROBABILITIES`` to a Triton answer; any
other value (or none) is the label view, ``LABEL`` and ``LABEL_INDEX`` only."""
