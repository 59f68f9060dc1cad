"""``spec.rollout.prober``: the golden-set prober, on by default.

The prober sends the stable version's golden set (labelled examples published with the
version, ``registry/golden.py``) to both arms while a canary is undecided, so every probe
is a paired, labelled comparison that needs no application labels (docs/statistics.md,
"Golden-set probes"). It is on by default because paired evidence is the fastest evidence
there is; it does nothing for a stable version without a golden set (the prober says so).
"""

from __future__ import annotations

from pydantic import Field

from modeldeploy.operator.api.base import SpecModel

# One probe is one inference on each arm. At 1 probe/s a one-thread CPU predictor of a
# MiniLM-sized model (20-35 ms a request, 30-50 requests/s) spends 2-4% of its
# capacity on probes; a golden set of 1,000 examples lasts about 17 minutes.
DEFAULT_RATE_PER_SECOND = 1.0
MAX_RATE_PER_SECOND = 50.0


class ProberPolicy(SpecModel):
    """Golden-set probes to both arms while a canary is undecided."""

    enabled: bool = Field(
        default=True,
        description="Probe both arms with the stable version's golden set while a canary is"
        " undecided (each example at most once per rollout).",
    )
    rate_per_second: float = Field(
        default=DEFAULT_RATE_PER_SECOND,
        ge=0.01,
        le=MAX_RATE_PER_SECOND,
        description="Probes per second; each probe is one request to each arm.",
    )
