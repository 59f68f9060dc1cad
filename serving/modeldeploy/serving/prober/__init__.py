"""Golden-set prober: labelled probes to both arms, recorded as paired probe evidence.

Run it as ``python -m modeldeploy.serving.prober`` (``--arms-file``: every rollout the
operator names, as both platforms run it), as an asyncio task
(``await Prober(config, golden).run(stop)``) or in a thread (:class:`ProberThread`).
Each golden example is used at most once per rollout (``schedule.py``).
"""

from modeldeploy.serving.prober.arms import ArmsProber, ProbeTarget, read_targets
from modeldeploy.serving.prober.core import (
    Prober,
    ProberConfig,
    ProbeResult,
    ProberMetrics,
    ProberThread,
)
from modeldeploy.serving.prober.golden import GoldenSet, load_golden, parse_jsonl

__all__ = [
    "ArmsProber",
    "GoldenSet",
    "ProbeResult",
    "ProbeTarget",
    "Prober",
    "ProberConfig",
    "ProberMetrics",
    "ProberThread",
    "load_golden",
    "parse_jsonl",
    "read_targets",
]
