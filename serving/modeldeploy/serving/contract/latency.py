"""Latency histogram buckets and the per-pod warm-up: one definition for serving and analysis.

Buckets are geometric with an exact ratio: edge ``k`` is ``BASE * RATIO**k`` as a float,
never rounded, so every bucket has the same relative width. The analysis
(``operator/analysis/latency.py``) compares the arms' shares above two edges ``1 +
tolerance`` apart, so it resolves the tolerances ``RATIO**k - 1`` exactly (0.05, 0.1025, ...).
``LATENCY_RESOLVABLE_TOLERANCE`` is the resolution of two separate quantile bounds, one
bucket per arm: the comparison the analysis made before.
"""

from __future__ import annotations

import math

LATENCY_BUCKET_BASE_S = 0.001
"""The first edge: 1 ms (faster requests all land in the first bucket)."""
LATENCY_BUCKET_RATIO = 1.05
"""Every edge is exactly this factor above the previous one."""
LATENCY_BUCKET_TOP_S = 30.0
"""The last edge is the first one at or above this (then only ``+Inf``)."""
LATENCY_RESOLVABLE_TOLERANCE = round(2 * (LATENCY_BUCKET_RATIO - 1), 12)
"""One bucket of quantisation per arm. Rounded: ``2 * (1.05 - 1)`` is 0.1 plus one ulp."""

DEFAULT_LATENCY_WARMUP_REQUESTS = 20
"""Requests per predictor process kept out of the latency histogram (still counted).

A fresh pod's first requests pay for lazy initialisation (allocator growth, kernel
selection, first tokenizer calls); on a canary that just started they would sit in its
P99 and could fail the latency gate against a warm stable.
"""


def latency_bucket_edges(
    base: float = LATENCY_BUCKET_BASE_S,
    ratio: float = LATENCY_BUCKET_RATIO,
    top: float = LATENCY_BUCKET_TOP_S,
) -> tuple[float, ...]:
    """``base * ratio**k`` for k = 0 .. the first k whose edge reaches ``top`` (no ``+Inf``)."""
    if not (base > 0 and ratio > 1 and top > base):
        raise ValueError(f"need base > 0, ratio > 1, top > base (got {base}, {ratio}, {top})")
    count = math.ceil(math.log(top / base) / math.log(ratio)) + 1
    edges = [base * ratio**k for k in range(count)]
    while edges[-1] < top:  # guard against log rounding just below an integer
        edges.append(base * ratio ** len(edges))
    return tuple(edges)
