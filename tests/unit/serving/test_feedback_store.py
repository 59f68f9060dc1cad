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


def test_the_store_is_bounded_in_bytes_and_its_memory_stays_flat():
    """Measured, not modelled: after the store fills its byte budget, 40k more puts add
    (almost) nothing to what Python has allocated."""
    import gc
    import tracemalloc
    import uuid

    from modeldeploy.serving.contract.store import BoundedStore

    budget = 1 << 20
    store: BoundedStore[int] = BoundedStore(1_000_000, 3600.0, max_bytes=budget)
    keys = [f"{uuid.uuid4()}#0" for _ in range(60_000)]
    tracemalloc.start()  # before the fill: blocks freed later must have been traced
    for key in keys[:20_000]:
        store.put(key, 1)
    assert store.estimated_bytes <= budget
    filled = len(store)
    gc.collect()
    before = tracemalloc.get_traced_memory()[0]
    for key in keys[20_000:]:
        store.put(key, 1)
    gc.collect()
    grown = tracemalloc.get_traced_memory()[0] - before
    tracemalloc.stop()
    assert len(store) == filled and store.estimated_bytes <= budget
    assert store.tombstones > 0 and store.lookup(keys[0])[0] in ("expired", "unknown")
    assert store.lookup(keys[-1])[0] == "found"
    assert grown < 64 * 1024, f"store memory grew by {grown} bytes over 40k puts"


def test_the_byte_model_tracks_real_allocations():
    """The estimate is within a factor 1.5 of what tracemalloc measures for real ids."""
    import gc
    import tracemalloc
    import uuid

    from modeldeploy.serving.contract.store import BoundedStore

    store: BoundedStore[int] = BoundedStore(5_000, 3600.0, max_bytes=64 << 20)
    keys = [f"{uuid.uuid4()}#0" for _ in range(10_000)]
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    for key in keys:
        store.put(key, 1)  # 5k entries and 5k tombstones
    measured = tracemalloc.get_traced_memory()[0] - before
    tracemalloc.stop()
    assert len(store) == 5_000 and store.tombstones == 5_000
    assert measured / 1.5 < store.estimated_bytes < measured * 1.5


def test_a_labelled_prediction_predicted_again_stays_labelled_and_keeps_its_ttl():
    clock = Clock()
    store = PredictionStore(ttl_s=5, clock=clock)
    store.put("a", 0)
    assert store.take("a")[0] == "found"
    clock.now = 4.0
    store.put("a", 1)  # the same id served again must not be labelled a second time
    status, entry = store.take("a")
    assert status == "duplicate" and entry is not None and entry.label_index == 0
    clock.now = 5.5  # five seconds after the first prediction, not the second
    assert store.take("a")[0] == "expired"


def test_an_unlabelled_prediction_predicted_again_is_replaced_and_timed_afresh():
    clock = Clock()
    store = PredictionStore(ttl_s=5, clock=clock)
    store.put("a", 0)
    clock.now = 4.0
    store.put("a", 1)
    clock.now = 8.0
    status, entry = store.take("a")
    assert status == "found" and entry is not None and entry.label_index == 1
