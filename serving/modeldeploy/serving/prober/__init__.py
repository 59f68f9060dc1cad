"""Golden-set prober: labelled probes to both arms, recorded as paired probe evidence.

Run it as ``python -m modeldeploy.serving.prober``, as an asyncio task
(``await Prober(config, golden).run(stop)``) or in a thread (:class:`ProberThread`).
"""

from modeldeploy.serving.prober.core import (
    Prober,
    ProberConfig,
    ProbeResult,
    ProberMetrics,
    ProberThread,
)
from modeldeploy.serving.prober.golden import GoldenSet, load_golden, parse_jsonl

__all__ = [
    "GoldenSet",
    "ProbeResult",
    "Prober",
    "ProberConfig",
    "ProberMetrics",
    "ProberThread",
    "load_golden",
    "parse_jsonl",
]
