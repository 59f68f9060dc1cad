"""The prober against fake arms: per-arm counts with a deliberately wrong canary."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestServer

from modeldeploy.serving.contract.joiner import arms_entry
from modeldeploy.serving.prober import ArmsProber, GoldenSet, Prober, ProberConfig, ProberThread
from modeldeploy.serving.prober.arms import RETRY_S, Golden
from tests.integration.serving_router.conftest import Setup
from tests.support.processes import free_port

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
    # Allowed 12, it sends each of the 6 examples once and stops: a repeat is no evidence.
    assert await prober.run() == 6 and prober.exhausted

    assert len(setup.arms["stable"].predictions) == len(setup.arms["canary"].predictions) == 6
    texts = sorted(p["texts"][0] for p in setup.arms["stable"].predictions)
    assert texts == sorted(GOLDEN.texts)
    labelled = "modeldeploy_labelled_predictions_total"
    stable = {"model_version": "1", "role": "stable", "source": "probe"}
    canary = {"model_version": "2", "role": "canary", "source": "probe"}
    assert count(prober, labelled, **stable, correct="true") == 6
    assert count(prober, labelled, **stable, correct="false") == 0
    assert count(prober, labelled, **canary, correct="false") == 6
    paired = {"stable_version": "1", "canary_version": "2", "source": "probe"}
    assert count(prober, "modeldeploy_paired_outcomes_total", **paired, outcome="stable_only") == 6
    assert count(prober, "modeldeploy_paired_outcomes_total", **paired, outcome="both_correct") == 0


@pytest.mark.asyncio
async def test_a_ready_arm_that_fails_spends_the_example_as_an_error_not_paired(
    start_router: Callable[..., Any],
) -> None:
    """Ready and still failing is evidence of nothing but an error: the example is spent."""
    setup = await start_router()
    setup.arms["canary"].failing = True
    prober = make_prober(setup, rate_per_s=500, max_probes=3)
    assert await prober.run() == 3
    assert prober.next_slot == 3
    assert count(prober, "modeldeploy_prober_errors_total", role="canary") == 3
    assert count(prober, "modeldeploy_prober_errors_total", role="stable") == 0
    assert count(prober, "modeldeploy_prober_deferred_total", role="canary") == 0
    labelled = {"model_version": "1", "role": "stable", "source": "probe", "correct": "true"}
    assert count(prober, "modeldeploy_labelled_predictions_total", **labelled) == 3
    assert prober.metrics.registry.get_sample_value(
        "modeldeploy_paired_outcomes_total",
        {"deployment": "demo", "stable_version": "1", "canary_version": "2",
         "source": "probe", "outcome": "both_correct"},
    ) is None  # fmt: skip


@pytest.mark.asyncio
@pytest.mark.parametrize("how", ["loading", "down"])
async def test_an_arm_that_is_not_serving_yet_uses_up_no_example(
    start_router: Callable[..., Any], monkeypatch: pytest.MonkeyPatch, how: str
) -> None:
    """A canary revision still loading (503, readiness false) or not listening at all: the
    probes wait, nothing is counted for either arm, and once it serves the prober starts
    from the first example of the order, so every example still reaches both arms."""
    monkeypatch.setattr("modeldeploy.serving.prober.core.DEFER_RETRY_S", 0.05)
    setup = await start_router()
    canary = setup.arms["canary"]
    down_port = free_port()
    if how == "loading":
        canary.ready = False
        canary_url = canary.url
    else:  # nothing listens there until the arm comes up
        canary_url = f"http://127.0.0.1:{down_port}"
    prober = Prober(
        ProberConfig(
            deployment="demo",
            stable_url=setup.arms["stable"].url,
            canary_url=canary_url,
            model_name="m",
            rate_per_s=500,
        ),
        GOLDEN,
    )
    stop = asyncio.Event()
    task = asyncio.create_task(prober.run(stop))
    deadline = time.monotonic() + 10
    while count(prober, "modeldeploy_prober_deferred_total", role="canary") < 3:
        assert time.monotonic() < deadline, "the prober never tried the arm"
        await asyncio.sleep(0.02)
    assert prober.next_slot == 0 and prober.sent == 0
    assert count(prober, "modeldeploy_prober_state", state="waiting_for_arm") == 1
    assert count(prober, "modeldeploy_prober_remaining") == len(GOLDEN.texts)
    labelled = "modeldeploy_labelled_predictions_total"
    assert count(prober, labelled, model_version="1", role="stable", source="probe",
                 correct="true") == 0  # fmt: skip
    assert count(prober, "modeldeploy_prober_errors_total", role="canary") == 0
    assert count(prober, "modeldeploy_prober_deferred_total", role="stable") == 0

    if how == "loading":
        canary.ready = True
        await asyncio.wait_for(task, timeout=10)
    else:  # the arm comes up where the prober looks
        late = TestServer(canary.app(), host="127.0.0.1", port=down_port)
        await late.start_server()
        try:
            await asyncio.wait_for(task, timeout=10)
        finally:
            await late.close()
    assert prober.exhausted and prober.sent == len(GOLDEN.texts)
    assert sorted(p["texts"][0] for p in canary.predictions) == sorted(GOLDEN.texts)
    paired = {"stable_version": "1", "canary_version": "2", "source": "probe"}
    assert count(prober, "modeldeploy_paired_outcomes_total", **paired,
                 outcome="both_correct") == len(GOLDEN.texts)  # fmt: skip
    assert count(prober, labelled, model_version="1", role="stable", source="probe",
                 correct="true") == len(GOLDEN.texts)  # fmt: skip
    assert count(prober, "modeldeploy_prober_state", state="exhausted") == 1


@pytest.mark.asyncio
async def test_the_thread_runner_keeps_the_rate_and_stops_cleanly(
    start_router: Callable[..., Any],
) -> None:
    setup = await start_router()
    # The fake arms live on this test's loop, so let it run while the thread probes.
    many = GoldenSet(tuple(f"good {i}" for i in range(100)), (1,) * 100)
    prober = Prober(
        ProberConfig(
            deployment="demo",
            stable_url=setup.arms["stable"].url,
            canary_url=setup.arms["canary"].url,
            model_name="m",
            rate_per_s=20,
        ),
        many,
    )
    runner = ProberThread(prober).start()
    await asyncio.sleep(1.0)
    started = time.monotonic()
    sent = await asyncio.to_thread(runner.stop)
    assert time.monotonic() - started < 1.0  # stops after the current probe, not the run
    assert not runner.is_alive()
    assert 10 <= sent <= 22  # about 20 per second for one second


def write_arms(folder: Path, setup: Setup | None, *, since: float, rate: float = 400) -> None:
    """The operator's arms entry for deployment demo (``contract/joiner.py``), with probe."""
    entries: dict[str, Any] = {}
    if setup is not None:
        arms = {r: (setup.arms[r].url, setup.arms[r].version) for r in ("stable", "canary")}
        probe = {"since": since, "rate": rate, "registry": "http://registry"}
        entries = json.loads(arms_entry("demo", "m", arms, probe=probe))["deployments"]
    (folder / "local.demo.json").write_text(json.dumps({"deployments": entries}))


@pytest.mark.asyncio
async def test_the_arms_prober_probes_each_named_rollout_once_per_example_and_stops(
    start_router: Callable[..., Any], tmp_path: Path
) -> None:
    setup = await start_router(canary_wrong=True)
    asked: list[tuple[str, str, str]] = []

    async def golden(registry: str, model: str, version: str) -> Golden | None:
        asked.append((registry, model, version))
        return Golden(GOLDEN, "digest") if version == "1" else None

    write_arms(tmp_path, setup, since=time.time())
    arms = ArmsProber(tmp_path, golden, poll_s=0.05, margin_s=0.005)
    await arms.sync()
    assert asked == [("http://registry", "m", "1")]  # the stable version's golden set
    prober = arms.probers["demo"]
    await asyncio.wait_for(arms.running["demo"][1], timeout=10)
    assert prober.exhausted
    texts = [p["texts"][0] for p in setup.arms["stable"].predictions]
    assert len(texts) == len(set(texts)) <= len(GOLDEN.texts)  # never a repeat
    await arms.sync()
    await arms.sync()
    assert "demo" not in arms.running  # used up for this rollout: it stays idle
    assert len(setup.arms["stable"].predictions) == len(texts)
    assert count(prober, "modeldeploy_prober_state", state="exhausted") == 1

    # The rollout was decided: the entry goes, and nothing is probed.
    write_arms(tmp_path, None, since=0)
    await arms.sync()
    assert arms.running == {}
    assert count(prober, "modeldeploy_prober_state", state="stopped") == 1


@pytest.mark.asyncio
async def test_the_arms_prober_says_when_the_stable_version_has_no_golden_set(
    start_router: Callable[..., Any], tmp_path: Path
) -> None:
    setup = await start_router()

    async def golden(registry: str, model: str, version: str) -> Golden | None:
        return None

    write_arms(tmp_path, setup, since=time.time())
    arms = ArmsProber(tmp_path, golden)
    await arms.sync()
    assert arms.running == {}
    value = arms.registry.get_sample_value(
        "modeldeploy_prober_state", {"deployment": "demo", "state": "no_golden_set"}
    )
    assert value == 1
    assert setup.arms["stable"].predictions == []


@pytest.mark.asyncio
async def test_an_unreadable_golden_set_is_asked_for_again_later_not_every_pass(
    start_router: Callable[..., Any], tmp_path: Path
) -> None:
    setup = await start_router()
    calls: list[str] = []

    async def golden(registry: str, model: str, version: str) -> Golden | None:
        calls.append(version)
        if len(calls) == 1:
            raise ConnectionError("registry down")
        return Golden(GOLDEN, "digest")

    write_arms(tmp_path, setup, since=time.time() + 60)
    arms = ArmsProber(tmp_path, golden)
    await arms.sync(now=0.0)
    state = {"deployment": "demo", "state": "registry_error"}
    assert arms.registry.get_sample_value("modeldeploy_prober_state", state) == 1
    await arms.sync(now=1.0)
    assert calls == ["1"] and arms.running == {}
    await arms.sync(now=RETRY_S + 1)
    assert calls == ["1", "1"] and "demo" in arms.running
    arms.running["demo"][2].set()
    await arms.running["demo"][1]
