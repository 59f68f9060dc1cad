"""The prober against fake arms: per-arm counts with a deliberately wrong canary."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest

from modeldeploy.serving.prober import GoldenSet, Prober, ProberConfig, ProberThread
from tests.integration.serving_router.conftest import Setup

# Labels follow the fake arms' rule ("good" -> positive), so stable is always right.
GOLDEN = GoldenSet(
    texts=("good film", "bad film", "a good one", "dull", "good", "awful"),
    labels=(1, 0, "positive", "negative", 1, 0),
)


def count(prober: Prober, name: str, **labels: str) -> float:
    value = prober.metrics.registry.get_sample_value(name, {"deployment": "demo", **labels})
    return value or 0.0


def make_prober(setup: Setup, **config: Any) -> Prober:
    return Prober(
        ProberConfig(
            deployment="demo",
            stable_url=setup.arms["stable"].url,
            canary_url=setup.arms["canary"].url,
            model_name="m",
            seed=1,
            **config,
        ),
        GOLDEN,
    )


@pytest.mark.asyncio
@pytest.mark.parametrize("label_view", [False, True], ids=["full-view", "label-view"])
async def test_each_probe_reaches_both_arms_and_is_counted_per_arm_and_paired(
    start_router: Callable[..., Any], label_view: bool
) -> None:
    """Full view: the versions come from the answers; label view (answers name no
    version): from the prober's own ``--stable-version``/``--canary-version``."""
    setup = await start_router(canary_wrong=True, label_view=label_view)
    versions = {"stable_version": "1", "canary_version": "2"} if label_view else {}
    prober = make_prober(setup, rate_per_s=500, max_probes=12, **versions)
    assert await prober.run() == 12

    assert len(setup.arms["stable"].predictions) == len(setup.arms["canary"].predictions) == 12
    # A shuffled cycle: 12 probes use each of the 6 examples exactly twice.
    texts = sorted(p["texts"][0] for p in setup.arms["stable"].predictions)
    assert texts == sorted(GOLDEN.texts * 2)
    labelled = "modeldeploy_labelled_predictions_total"
    stable = {"model_version": "1", "role": "stable", "source": "probe"}
    canary = {"model_version": "2", "role": "canary", "source": "probe"}
    assert count(prober, labelled, **stable, correct="true") == 12
    assert count(prober, labelled, **stable, correct="false") == 0
    assert count(prober, labelled, **canary, correct="false") == 12
    paired = {"stable_version": "1", "canary_version": "2", "source": "probe"}
    assert count(prober, "modeldeploy_paired_outcomes_total", **paired, outcome="stable_only") == 12
    assert count(prober, "modeldeploy_paired_outcomes_total", **paired, outcome="both_correct") == 0


@pytest.mark.asyncio
async def test_a_down_arm_is_counted_as_an_error_and_not_paired(
    start_router: Callable[..., Any],
) -> None:
    setup = await start_router()
    await setup.arms["canary"].server.close()
    prober = make_prober(setup, rate_per_s=500, max_probes=3)
    await prober.run()
    assert count(prober, "modeldeploy_prober_errors_total", role="canary") == 3
    assert count(prober, "modeldeploy_prober_errors_total", role="stable") == 0
    labelled = {"model_version": "1", "role": "stable", "source": "probe", "correct": "true"}
    assert count(prober, "modeldeploy_labelled_predictions_total", **labelled) == 3
    assert prober.metrics.registry.get_sample_value(
        "modeldeploy_paired_outcomes_total",
        {"deployment": "demo", "stable_version": "1", "canary_version": "2",
         "source": "probe", "outcome": "both_correct"},
    ) is None  # fmt: skip


@pytest.mark.asyncio
async def test_the_thread_runner_keeps_the_rate_and_stops_cleanly(
    start_router: Callable[..., Any],
) -> None:
    setup = await start_router()
    # The fake arms live on this test's loop, so let it run while the thread probes.
    import asyncio

    runner = ProberThread(make_prober(setup, rate_per_s=20)).start()
    await asyncio.sleep(1.0)
    started = time.monotonic()
    sent = await asyncio.to_thread(runner.stop)
    assert time.monotonic() - started < 1.0  # stops after the current probe, not the run
    assert not runner.is_alive()
    assert 10 <= sent <= 22  # about 20 per second for one second
