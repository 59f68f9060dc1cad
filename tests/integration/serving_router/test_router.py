"""The router over loopback HTTP, in front of fake arms (fast; see conftest.py)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import aiohttp
import pytest

from modeldeploy.serving.router import Split
from tests.integration.serving_router.conftest import Setup

pytestmark = pytest.mark.asyncio


def sample(setup: Setup, name: str, **labels: str) -> float:
    value = setup.router.metrics.registry.get_sample_value(name, {"deployment": "demo", **labels})
    return value or 0.0


async def predict(session: aiohttp.ClientSession, setup: Setup, text: str, **body: Any) -> Any:
    async with session.post(
        f"{setup.url}/v1/models/m:predict", json={"instances": [text], **body}
    ) as response:
        assert response.status == 200, await response.text()
        return response.headers["x-modeldeploy-arm"], await response.json()


async def settle(setup: Setup) -> None:
    """Wait for the router's background (paired, mirrored) calls to finish."""
    for _ in range(200):
        if not setup.router._pending:
            return
        await asyncio.sleep(0.01)
    raise AssertionError("background calls did not finish")


async def test_traffic_follows_the_weight_and_changes_at_run_time(
    start_router: Callable[..., Any],
) -> None:
    setup = await start_router(split=Split(canary=20))
    async with aiohttp.ClientSession() as session:
        arms = [(await predict(session, setup, "a film"))[0] for _ in range(400)]
        assert abs(arms.count("canary") / 400 - 0.20) < 0.06
        async with session.put(f"{setup.url}/router/weights", json={"canary": 75}) as response:
            assert response.status == 200
        async with session.get(f"{setup.url}/router/weights") as response:
            weights = await response.json()
        assert (weights["stable"], weights["canary"]) == (25.0, 75.0)
        arms = [(await predict(session, setup, "a film"))[0] for _ in range(400)]
        assert abs(arms.count("canary") / 400 - 0.75) < 0.06
        async with session.put(f"{setup.url}/router/weights", json={"canary": 150}) as response:
            assert response.status == 400
            assert "between 0 and 100" in (await response.json())["error"]
    # What the arms saw is what the router counted.
    canary_seen = len(setup.arms["canary"].predictions)
    assert (
        sample(
            setup,
            "modeldeploy_router_requests_total",
            role="canary",
            purpose="primary",
            protocol="v1",
        )
        == canary_seen
    )
    assert sample(setup, "modeldeploy_router_canary_weight_ratio") == 0.75


async def test_request_ids_pass_through_to_the_arm_and_back(
    start_router: Callable[..., Any],
) -> None:
    setup = await start_router(canary=False)
    async with aiohttp.ClientSession() as session:
        _, answer = await predict(session, setup, "good", id="client-id-1")
        assert answer["request_id"] == "client-id-1"
        async with session.post(
            f"{setup.url}/v2/models/m/infer",
            json={"inputs": [{"name": "text", "datatype": "BYTES", "shape": [1], "data": ["x"]}]},
            headers={"x-request-id": "hdr-7"},
        ) as response:
            assert response.status == 200
            assert (await response.json())["id"] == "hdr-7"
            assert response.headers["x-request-id"] == "hdr-7"
        _, generated = await predict(session, setup, "no id given")
    seen = [p["request_id"] for p in setup.arms["stable"].predictions]
    assert seen == ["client-id-1", "hdr-7", generated["request_id"]]
    assert len(generated["request_id"]) == 36  # a uuid4 the router made


async def test_shadow_gets_every_request_its_answer_is_dropped_and_agreement_counted(
    start_router: Callable[..., Any],
) -> None:
    setup = await start_router(canary=False, shadow=True)  # the shadow arm answers wrongly
    async with aiohttp.ClientSession() as session:
        for text in ["good", "good", "bad", "good and bad", "meh"]:
            arm, answer = await predict(session, setup, text)
            assert arm == "stable"
            assert answer["model_version"] == "1"  # never the shadow's answer
    await settle(setup)
    assert len(setup.arms["shadow"].predictions) == 5
    labels = {"stable_version": "1", "shadow_version": "3"}
    assert (
        sample(setup, "modeldeploy_router_shadow_comparisons_total", agree="false", **labels) == 5
    )
    assert sample(setup, "modeldeploy_router_shadow_comparisons_total", agree="true", **labels) == 0


async def test_a_share_of_canary_traffic_is_also_scored_by_stable(
    start_router: Callable[..., Any],
) -> None:
    setup = await start_router(split=Split(canary=100, paired_share=40))
    async with aiohttp.ClientSession() as session:
        for i in range(300):
            assert (await predict(session, setup, f"text {i}"))[0] == "canary"
    await settle(setup)
    paired = len(setup.arms["stable"].predictions)
    assert abs(paired / 300 - 0.40) < 0.08
    assert len(setup.arms["canary"].predictions) == 300
    assert (
        sample(
            setup,
            "modeldeploy_router_requests_total",
            role="stable",
            purpose="paired",
            protocol="v1",
        )
        == paired
    )
    canary_ids = {p["request_id"] for p in setup.arms["canary"].predictions}
    assert {p["request_id"] for p in setup.arms["stable"].predictions} <= canary_ids


async def test_feedback_reaches_every_arm_that_scored_and_counts_the_pair_once(
    start_router: Callable[..., Any],
) -> None:
    setup = await start_router(split=Split(canary=100, paired_share=100), canary_wrong=True)
    async with aiohttp.ClientSession() as session:
        _, single = await predict(session, setup, "good film", id="one")
        async with session.post(
            f"{setup.url}/v1/models/m:predict", json={"instances": ["good", "bad"], "id": "two"}
        ) as response:
            assert response.status == 200
        feedback = [("one", "positive"), ("two/0", 1), ("two/1", "positive")]
        for request_id, label in feedback:
            async with session.post(
                f"{setup.url}/v1/feedback", json={"request_id": request_id, "label": label}
            ) as response:
                assert response.status == 200, await response.text()
                body = await response.json()
                assert body["counted"] is True
                assert set(body["arms"]) == {"stable", "canary"}
        # The same label again is forwarded (arms dedupe) but not paired again.
        async with session.post(
            f"{setup.url}/v1/feedback", json={"request_id": "one", "label": 1}
        ) as response:
            assert (await response.json())["counted"] is False
        async with session.post(
            f"{setup.url}/v1/feedback", json={"request_id": "nobody", "label": 1}
        ) as response:
            assert response.status == 404
            assert "nobody" in (await response.json())["error"]
        async with session.post(
            f"{setup.url}/v1/feedback", json={"request_id": "two/0", "label": "neutral"}
        ) as response:
            assert response.status == 400
    assert single["request_id"] == "one"
    assert [f["request_id"] for f in setup.arms["stable"].feedback][:3] == ["one", "two/0", "two/1"]
    assert [f["request_id"] for f in setup.arms["canary"].feedback][:3] == ["one", "two/0", "two/1"]

    def paired(outcome: str) -> float:
        return sample(
            setup, "modeldeploy_paired_outcomes_total", stable_version="1", canary_version="2",
            source="feedback", outcome=outcome,
        )  # fmt: skip

    # stable is right on "good film" and "good"; on "bad" labelled positive, canary is right.
    assert (paired("stable_only"), paired("canary_only")) == (2, 1)
    assert paired("both_correct") == paired("both_wrong") == 0
    assert sample(setup, "modeldeploy_router_feedback_total", outcome="unknown_id") == 1
    assert sample(setup, "modeldeploy_router_feedback_total", outcome="duplicate") == 1


async def test_an_unreachable_arm_gives_a_clear_502_and_the_router_stays_up(
    start_router: Callable[..., Any],
) -> None:
    setup = await start_router(split=Split(canary=100))
    await setup.arms["canary"].server.close()
    async with aiohttp.ClientSession() as session:
        async with session.post(
            f"{setup.url}/v1/models/m:predict", json={"instances": ["x"]}
        ) as response:
            assert response.status == 502
            body = await response.json()
            assert body["code"] == "upstream_unreachable"
            assert "canary upstream" in body["error"]
        async with session.put(f"{setup.url}/router/weights", json={"canary": 0}) as response:
            assert response.status == 200
        arm, _ = await predict(session, setup, "still serving")
        assert arm == "stable"
    assert (
        sample(setup, "modeldeploy_router_upstream_errors_total", role="canary", reason="connect")
        == 1
    )


async def test_paired_inputs_count_what_each_arm_predicted_without_labels(
    start_router: Callable[..., Any],
) -> None:
    """The drift checks' paired table: no label needed, one count per input both scored."""
    setup = await start_router(split=Split(canary=100, paired_share=100), canary_wrong=True)
    async with aiohttp.ClientSession() as session:
        for text in ["good", "good", "bad"]:
            await predict(session, setup, text)
    await settle(setup)

    def pairs(stable_label: str, canary_label: str) -> float:
        return sample(
            setup,
            "modeldeploy_paired_predictions_total",
            stable_version="1",
            canary_version="2",
            stable_label=stable_label,
            canary_label=canary_label,
        )

    # stable says positive for "good", negative for "bad"; the canary arm says the opposite
    assert pairs("positive", "negative") == 2 and pairs("negative", "positive") == 1
    assert pairs("positive", "positive") == pairs("negative", "negative") == 0


async def test_in_the_label_view_answers_and_errors_name_no_arm_and_versions_come_from_the_table(
    start_router: Callable[..., Any],
) -> None:
    """Arms that answer without a version (``--response-detail label``): the client sees no
    arm header and no version; the router still counts, pairs and shadows by the versions
    of its arms table, never "" from an answer."""
    setup = await start_router(
        split=Split(canary=50, paired_share=100), canary_wrong=True, shadow=True, label_view=True
    )
    async with aiohttp.ClientSession() as session:
        seen = []
        for i in range(40):
            async with session.post(
                f"{setup.url}/v1/models/m:predict", json={"instances": [f"good {i}"]}
            ) as response:
                assert response.status == 200
                assert "x-modeldeploy-arm" not in response.headers
                seen.append(await response.json())
        assert all(set(a) == {"predictions", "request_id"} for a in seen)
        # Both arms served (the canary is always wrong here), and nothing else tells them apart.
        assert {a["predictions"][0]["label"] for a in seen} == {"positive", "negative"}
        feedback = {"request_id": seen[0]["request_id"], "label": "positive"}
        async with session.post(f"{setup.url}/v1/feedback", json=feedback) as response:
            assert response.status == 200
            assert set(await response.json()) == {"request_id", "counted"}
    await settle(setup)
    pair = {"stable_label": "positive", "canary_label": "negative"}
    paired = sample(setup, "modeldeploy_paired_predictions_total", stable_version="1",
                    canary_version="2", **pair)  # fmt: skip
    canary_served = sum(a["predictions"][0]["label"] == "negative" for a in seen)
    assert paired == canary_served > 0
    shadowed = sample(setup, "modeldeploy_router_shadow_comparisons_total", stable_version="1",
                      shadow_version="3", agree="false")  # fmt: skip
    assert shadowed == 40  # stable scored every request: as primary, or paired with canary
    assert not sample(setup, "modeldeploy_paired_predictions_total", stable_version="",
                      canary_version="", **pair)  # fmt: skip

    # An arm that is down: the 502 says so without naming the arm or its address.
    await setup.arms["canary"].server.close()
    async with aiohttp.ClientSession() as session:
        async with session.put(f"{setup.url}/router/weights", json={"canary": 100}) as response:
            assert response.status == 200
        async with session.post(
            f"{setup.url}/v1/models/m:predict", json={"instances": ["x"]}
        ) as response:
            assert response.status == 502
            body = await response.json()
    assert body["code"] == "upstream_unreachable"
    assert "canary" not in body["error"] and setup.arms["canary"].url not in body["error"]


async def test_put_arms_carries_each_arms_version(start_router: Callable[..., Any]) -> None:
    """A new canary with its version: its answers are counted under it; without one, an arm
    at a new URL has none (not the previous arm's)."""
    setup = await start_router(split=Split(canary=100, paired_share=100), label_view=True)
    arms = {"stable": setup.arms["stable"].url, "canary": setup.arms["canary"].url}
    async with aiohttp.ClientSession() as session:
        body = {**arms, "canary_version": "9", "weight": 100}
        async with session.put(f"{setup.url}/router/arms", json=body) as response:
            assert response.status == 200, await response.text()
        assert setup.router.versions == {"stable": "1", "canary": "9"}
        await predict_plain(session, setup)
        await settle(setup)
        assert sample(setup, "modeldeploy_paired_predictions_total", stable_version="1",
                      canary_version="9", stable_label="positive",
                      canary_label="positive") == 1  # fmt: skip
        async with session.put(
            f"{setup.url}/router/arms", json={**arms, "canary_version": ""}
        ) as response:
            assert response.status == 400
        async with session.put(
            f"{setup.url}/router/arms", json={"stable": arms["canary"], "canary": arms["stable"]}
        ) as response:
            assert response.status == 200
        assert setup.router.versions == {}


async def predict_plain(session: aiohttp.ClientSession, setup: Setup) -> Any:
    async with session.post(
        f"{setup.url}/v1/models/m:predict", json={"instances": ["good"]}
    ) as response:
        assert response.status == 200
        return await response.json()
