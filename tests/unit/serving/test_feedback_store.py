"""Feedback store rules: bounded, TTL, expired vs unknown, duplicates count once."""

from __future__ import annotations

import pytest
from prometheus_client import CollectorRegistry

from modeldeploy.serving.feedback import (
    FeedbackError,
    PredictionStore,
    apply_feedback,
    resolve_label,
)
from modeldeploy.serving.metrics import ArmMetrics

LABELS = ["negative", "positive"]


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_entry_expires_after_ttl_and_reads_as_expired_not_unknown():
    clock = Clock()
    store = PredictionStore(capacity=10, ttl_s=5, clock=clock)
    store.put("a", 1)
    clock.now = 4.9
    assert store.take("a")[0] == "found"
    store.put("b", 1)
    clock.now = 10.0
    assert store.take("b")[0] == "expired"
    assert store.take("zzz")[0] == "unknown"


def test_capacity_evicts_oldest_first():
    store = PredictionStore(capacity=2, ttl_s=100, clock=Clock())
    for key in "abc":
        store.put(key, 0)
    assert len(store) == 2
    assert store.take("a")[0] == "expired"
    assert store.take("c")[0] == "found"


def test_second_take_is_a_duplicate():
    store = PredictionStore(clock=Clock())
    store.put("a", 0)
    assert store.take("a")[0] == "found"
    assert store.take("a")[0] == "duplicate"


@pytest.mark.parametrize(("value", "index"), [(0, 0), (1, 1), ("positive", 1), ("0", 0)])
def test_label_by_index_or_name(value, index):
    assert resolve_label(value, LABELS) == index


@pytest.mark.parametrize("value", [2, -1, "neutral", True, None, 1.0])
def test_unknown_label_is_bad_input(value):
    with pytest.raises(FeedbackError) as info:
        resolve_label(value, LABELS)
    assert info.value.status == 400


def _metrics() -> tuple[ArmMetrics, CollectorRegistry]:
    registry = CollectorRegistry()
    return ArmMetrics("d", "1", "stable", LABELS, registry), registry


def test_apply_feedback_counts_correctness_once():
    metrics, registry = _metrics()
    store = PredictionStore(clock=Clock())
    store.put("r", 1)
    first = apply_feedback({"request_id": "r", "label": "positive"}, store, LABELS, metrics)
    again = apply_feedback({"request_id": "r", "label": "positive"}, store, LABELS, metrics)
    assert first["correct"] and first["counted"] and not again["counted"]
    labels = {"deployment": "d", "model_version": "1", "role": "stable"}
    total = registry.get_sample_value(
        "modeldeploy_labelled_predictions_total",
        {**labels, "source": "feedback", "correct": "true"},
    )
    dup = registry.get_sample_value(
        "modeldeploy_feedback_rejected_total", {**labels, "reason": "duplicate"}
    )
    assert total == 1 and dup == 1


def test_apply_feedback_unknown_id_is_404_and_counted():
    metrics, registry = _metrics()
    with pytest.raises(FeedbackError) as info:
        apply_feedback({"request_id": "nope", "label": 0}, PredictionStore(), LABELS, metrics)
    assert info.value.status == 404 and info.value.reason == "unknown_id"
    assert (
        registry.get_sample_value(
            "modeldeploy_feedback_rejected_total",
            {"deployment": "d", "model_version": "1", "role": "stable", "reason": "unknown_id"},
        )
        == 1
    )
