"""The /metrics contract of docs/metrics.md, and dynamic batching seen through it."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from modeldeploy.serving.contract.latency import DEFAULT_LATENCY_WARMUP_REQUESTS
from modeldeploy.serving.metrics import latency_buckets
from tests.integration.serving.scrape import scrape, value

pytestmark = pytest.mark.slow

CONTRACT = {
    "modeldeploy_request_duration_seconds": {"protocol"},
    "modeldeploy_requests_total": {"outcome"},
    "modeldeploy_nan_outputs_total": set(),
    "modeldeploy_tokenization_failures_total": {"reason"},
    "modeldeploy_input_tokens": set(),
    "modeldeploy_truncated_inputs_total": set(),
    "modeldeploy_batch_size": set(),
    "modeldeploy_forward_pass_duration_seconds": set(),
    "modeldeploy_predictions_total": {"label"},
    "modeldeploy_prediction_confidence": set(),
    "modeldeploy_labelled_predictions_total": {"source", "correct"},
    "modeldeploy_feedback_rejected_total": {"reason"},
}
COMMON = {"deployment": "demo", "model_version": "7", "role": "canary"}
HISTOGRAMS = {name for name in CONTRACT if not name.endswith("_total")}


def test_every_series_has_the_contract_name_and_labels(tiny_predictor):
    httpx.post(tiny_predictor.v1, json={"instances": ["metrics please"]})
    samples = scrape(tiny_predictor.url)
    seen = set()
    for name, labels in samples:
        base = next((c for c in CONTRACT if name == c or name.startswith(c + "_")), None)
        if base is None or name.endswith("_created"):
            continue
        seen.add(base)
        labels = dict(labels)
        extra = CONTRACT[base] | ({"le"} if name.endswith("_bucket") else set())
        assert set(labels) == set(COMMON) | extra, (name, labels)
        assert {k: labels[k] for k in COMMON} == COMMON
    assert seen == set(CONTRACT)
    for hist in HISTOGRAMS:
        assert any(n == hist + "_bucket" for n, _ in samples), hist


def test_latency_buckets_follow_the_documented_layout(tiny_predictor):
    samples = scrape(tiny_predictor.url)
    bounds = sorted(
        float(dict(labels)["le"])
        for name, labels in samples
        if name == "modeldeploy_request_duration_seconds_bucket"
        and dict(labels)["protocol"] == "v1"
    )
    assert bounds[:-1] == list(latency_buckets())  # exact: the edges round-trip as text
    assert bounds[-1] == float("inf")


def test_the_first_requests_of_the_process_are_counted_but_not_timed(tiny_predictor):
    """Warm-up: the histogram misses exactly the contract's first requests of the process."""
    for i in range(DEFAULT_LATENCY_WARMUP_REQUESTS + 5):
        httpx.post(tiny_predictor.v1, json={"instances": [f"warm {i}"]})
    samples = scrape(tiny_predictor.url)
    counted = value(samples, "modeldeploy_requests_total")
    timed = value(samples, "modeldeploy_request_duration_seconds_count")
    assert counted - timed == DEFAULT_LATENCY_WARMUP_REQUESTS
    assert timed >= 5


def test_predictions_are_counted_by_class(tiny_predictor):
    before = value(scrape(tiny_predictor.url), "modeldeploy_predictions_total")
    r = httpx.post(tiny_predictor.v1, json={"instances": ["great", "terrible", "fine"]})
    labels = [p["label"] for p in r.json()["predictions"]]
    samples = scrape(tiny_predictor.url)
    assert value(samples, "modeldeploy_predictions_total") == before + 3
    for label in set(labels):
        assert value(samples, "modeldeploy_predictions_total", label=label) >= labels.count(label)


def test_concurrent_requests_share_forward_passes(tiny_predictor):
    """32 concurrent single-text requests must need fewer than 32 forward passes."""
    before = scrape(tiny_predictor.url)

    async def burst() -> list[int]:
        async with httpx.AsyncClient(timeout=60) as client:
            responses = await asyncio.gather(
                *(
                    client.post(tiny_predictor.v1, json={"instances": [f"review number {i}"]})
                    for i in range(32)
                )
            )
        return [r.status_code for r in responses]

    assert asyncio.run(burst()) == [200] * 32
    after = scrape(tiny_predictor.url)
    passes = value(after, "modeldeploy_batch_size_count") - value(
        before, "modeldeploy_batch_size_count"
    )
    items = value(after, "modeldeploy_batch_size_sum") - value(before, "modeldeploy_batch_size_sum")
    assert items == 32
    assert passes < 32, f"{passes} forward passes for 32 concurrent requests: no batching"
    larger = value(after, "modeldeploy_batch_size_count") - value(
        after, "modeldeploy_batch_size_bucket", le="1.0"
    )
    assert larger >= 1
    # Every pass is timed once, and a pass takes some time.
    timed = "modeldeploy_forward_pass_duration_seconds"
    assert value(after, f"{timed}_count") - value(before, f"{timed}_count") == passes
    assert value(after, f"{timed}_sum") > value(before, f"{timed}_sum")


def test_tokenization_failures_are_counted_by_reason(tiny_predictor):
    """The tiny checkpoint's max length is 64; its vocabulary is English word pieces."""
    reasons = ("empty", "over_limit", "unknown_tokens", "error")
    before = scrape(tiny_predictor.url)
    texts = ["\u0301", " ".join(["word"] * 80), "日本語 テキスト ☃☃", "a fine film"]
    r = httpx.post(tiny_predictor.v1, json={"instances": texts})
    assert r.status_code == 200, r.text  # counted, still scored (truncated when over-long)
    after = scrape(tiny_predictor.url)
    name = "modeldeploy_tokenization_failures_total"
    counted = {x: value(after, name, reason=x) - value(before, name, reason=x) for x in reasons}
    assert counted == {"empty": 1, "over_limit": 1, "unknown_tokens": 1, "error": 0}
    truncated = "modeldeploy_truncated_inputs_total"
    assert value(after, truncated) - value(before, truncated) == 1
