"""What the joiner exports is what the operator's scrape provider reads: its labelled and
paired counts land on the rollout's arms, and a restart of the joiner is seen."""

from __future__ import annotations

from prometheus_client import generate_latest

from modeldeploy.operator.metrics.base import AnalysisTarget
from modeldeploy.operator.metrics.scrape import parse_samples
from modeldeploy.operator.metrics.snapshot import collect
from modeldeploy.serving.joiner.book import Counted
from modeldeploy.serving.joiner.metrics import JoinerMetrics


def test_the_scrape_provider_reads_the_joiners_counts_per_arm_and_pair() -> None:
    metrics = JoinerMetrics()
    label = Counted((("canary", "2", True), ("stable", "1", False)), (("1", "2", "canary_only"),))
    for _ in range(3):
        metrics.counted("demo", "feedback", label)
    metrics.counted("other", "feedback", label)  # another deployment: not this rollout's
    text = generate_latest(metrics.registry).decode()
    source = collect(parse_samples(text), AnalysisTarget("demo", "1", "2"))
    assert source.stable is not None and source.canary is not None
    assert (source.stable.labelled, source.stable.correct) == (3.0, 0.0)
    assert (source.canary.labelled, source.canary.correct) == (3.0, 3.0)
    assert source.paired is not None and list(source.paired) == [0.0, 0.0, 3.0, 0.0]
    assert source.start is not None  # process_start_time_seconds: restarts are visible
