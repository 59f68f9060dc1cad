"""Each golden example counts at most once per rollout, across restarts (no HTTP: the arms
are a function of the text)."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from modeldeploy.serving.prober import GoldenSet, Prober, ProberConfig
from modeldeploy.serving.prober.schedule import Schedule, order, rollout_key
from modeldeploy.serving.router.pairing import ArmPrediction

GOLDEN = GoldenSet(
    texts=tuple(f"sentence {i}" for i in range(12)), labels=tuple(i % 2 for i in range(12))
)
KEY = rollout_key("demo", "1", "2", "sha")


class ArmsByText(Prober):
    """Stable always right; the canary wrong on texts ending in 3 (both arms deterministic)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.asked: list[str] = []

    async def _ask(self, session: Any, role: str, text: str, probe_id: str) -> ArmPrediction:
        truth = GOLDEN.labels[GOLDEN.texts.index(text)]
        assert isinstance(truth, int)
        if role == "stable":
            self.asked.append(text)
            return ArmPrediction("1", "", truth)
        return ArmPrediction("2", "", 1 - truth if text.endswith("3") else truth)


def config(**overrides: Any) -> ProberConfig:
    base: dict[str, Any] = dict(
        deployment="demo", stable_url="http://s", canary_url="http://c", model_name="m",
        rate_per_s=400.0, key=KEY, margin_s=0.005,
    )  # fmt: skip
    return ProberConfig(**{**base, **overrides})


def total(prober: Prober, name: str, **labels: str) -> float:
    registry = prober.metrics.registry
    return sum(
        s.value
        for metric in registry.collect()
        for s in metric.samples
        if s.name == name and all(s.labels.get(k) == v for k, v in labels.items())
    )


def test_the_order_is_a_fixed_permutation_per_rollout() -> None:
    assert sorted(order(KEY, 50)) == list(range(50))
    assert order(KEY, 50) == order(KEY, 50)
    assert order(rollout_key("demo", "1", "3", "sha"), 50) != order(KEY, 50)


def test_a_restart_resumes_after_every_slot_already_due() -> None:
    schedule = Schedule(since=1000.0, rate=2.0, size=100)
    assert schedule.first_unused(999.0, margin=0.5) == 0  # before the start
    # At 1010 slots 0..20 (due up to 1010.0) may have been sent; margin 0.5 adds one more.
    assert schedule.first_unused(1010.0, margin=0.5) == 22
    assert schedule.first_unused(2000.0, margin=0.5) == 100  # all due: nothing left


@pytest.mark.asyncio
async def test_repeats_are_not_counted_the_prober_stops_when_the_set_is_used_up() -> None:
    prober = ArmsByText(config(), GOLDEN)
    sent = await asyncio.wait_for(prober.run(), timeout=10)
    # It was free to probe on; it stopped after every example was used exactly once.
    assert sent == len(GOLDEN.texts) and prober.exhausted
    assert sorted(prober.asked) == sorted(GOLDEN.texts)
    labelled = "modeldeploy_labelled_predictions_total"
    assert total(prober, labelled, role="stable", source="probe") == len(GOLDEN.texts)
    assert total(prober, labelled, role="canary", source="probe") == len(GOLDEN.texts)
    paired = "modeldeploy_paired_outcomes_total"
    assert total(prober, paired, source="probe") == len(GOLDEN.texts)
    wrong = sum(t.endswith("3") for t in GOLDEN.texts)
    assert total(prober, paired, outcome="stable_only") == wrong
    assert total(prober, "modeldeploy_prober_state", state="exhausted") == 1
    assert total(prober, "modeldeploy_prober_remaining") == 0


@pytest.mark.asyncio
async def test_a_restarted_prober_never_sends_an_example_again() -> None:
    since = time.time()
    first = ArmsByText(config(since=since, max_probes=5), GOLDEN)
    await asyncio.wait_for(first.run(), timeout=10)
    # The first process is gone; a new one (new counters, as after a restart) takes over
    # the same rollout from the durable start time alone.
    second = ArmsByText(config(since=since), GOLDEN)
    await asyncio.wait_for(second.run(), timeout=10)
    assert len(first.asked) == 5
    assert not set(first.asked) & set(second.asked)
    assert len(first.asked) + len(second.asked) <= len(GOLDEN.texts)
    assert second.exhausted


@pytest.mark.asyncio
async def test_slots_are_never_used_before_they_are_due() -> None:
    since = time.time()
    prober = ArmsByText(config(since=since, rate_per_s=50.0), GOLDEN)
    started = time.time()
    await asyncio.wait_for(prober.run(), timeout=10)
    # 12 examples at 50/s: the last slot is due 0.22 s after the start at the earliest.
    assert time.time() - started >= prober.schedule.due(len(GOLDEN.texts) - 1) - since - 0.05


def test_a_golden_set_with_a_repeated_text_is_refused() -> None:
    with pytest.raises(ValueError, match="once"):
        GoldenSet(texts=("a", "a"), labels=(1, 1))
