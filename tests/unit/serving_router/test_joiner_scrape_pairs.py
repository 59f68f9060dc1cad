"""The joiner's sampled pairs are what the operator's drift check reads as paired evidence:
``modeldeploy_paired_predictions_total`` from the joiner lands on the rollout's canary arm
as the pair table, and pairs of another canary version are not this rollout's."""

from __future__ import annotations

from prometheus_client import generate_latest

from modeldeploy.operator.metrics.base import AnalysisTarget
from modeldeploy.operator.metrics.scrape import parse_samples
from modeldeploy.operator.metrics.snapshot import agreement_of, collect
from modeldeploy.serving.joiner.metrics import JoinerMetrics


def test_the_scrape_provider_reads_the_joiners_pairs_as_the_pair_table() -> None:
    metrics = JoinerMetrics()
    for _ in range(5):
        metrics.paired_prediction("demo", "1", "2", "negative", "positive")
    for _ in range(7):
        metrics.paired_prediction("demo", "1", "2", "positive", "positive")
    metrics.paired_prediction("demo", "1", "3", "negative", "negative")  # another canary
    metrics.pair_sample("paired")
    text = generate_latest(metrics.registry).decode()
    source = collect(parse_samples(text), AnalysisTarget("demo", "1", "2"))
    assert source.canary is not None
    agreement = agreement_of(source.canary.drift)
    assert agreement is not None
    assert agreement.table == {("negative", "positive"): 5, ("positive", "positive"): 7}
    assert (agreement.agree, agreement.disagree) == (7, 5)
