"""Sampled pairing at the joiner, in process: a drawn unlabelled response is re-scored on the
other arm after its event is answered, counted as a paired prediction, never re-drawn from
the joiner's own re-scores, and held to its budget of re-scores per second."""

from __future__ import annotations

import asyncio
import json
import random
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from itertools import pairwise
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from prometheus_client.parser import text_string_to_metric_families

from modeldeploy.serving.contract.cloudevents import Agent
from modeldeploy.serving.contract.joiner import logger_url
from modeldeploy.serving.joiner.app import Joiner, JoinerConfig
from modeldeploy.serving.joiner.book import JoinBook
from modeldeploy.serving.joiner.pairing import RESCORE_CE_ID_PREFIX, ArmsFile

pytestmark = pytest.mark.asyncio
LABELS = ("negative", "positive")


@dataclass
class SlowArm:
    """A v1 arm that answers after ``delay_s``: positive when the text says "good"
    (``flip``: the other way round), under the request's ``Ce-Id``-free own id."""

    version: str
    delay_s: float = 0.0
    flip: bool = False
    calls: list[tuple[float, str, str]] = field(default_factory=list)  # (time, ce-id, text)

    def app(self) -> web.Application:
        async def predict(request: web.Request) -> web.Response:
            body = await request.json()
            self.calls.append((time.monotonic(), request.headers.get("Ce-Id", ""),
                               body["instances"][0]))  # fmt: skip
            await asyncio.sleep(self.delay_s)
            index = int(("good" in body["instances"][0]) != self.flip)
            rid = f"own-{len(self.calls)}"
            return web.json_response(answer(rid, index, self.version))

        app = web.Application()
        app.router.add_post(r"/v1/models/{name:[^/:]+}:predict", predict)
        return app


def answer(rid: str, index: int, version: str) -> dict[str, Any]:
    return {
        "predictions": [{"id": rid, "label": LABELS[index], "label_index": index}],
        "request_id": rid, "model_version": version,
    }  # fmt: skip


@dataclass
class Stack:
    joiner: Joiner
    events: TestClient
    api: TestClient
    arms: dict[str, SlowArm]

    async def log(self, role: str, rid: str, text: str, index: int, ce_id: str = "") -> float:
        """Post one request and its response as KServe's agent does; seconds the two took."""
        version = self.arms[role].version
        request = json.dumps({"instances": [text]}).encode()
        reply = json.dumps(answer(rid, index, version)).encode()
        started = time.monotonic()
        for headers, body in Agent("pod-a").events(request, reply, ce_id or None):
            url = logger_url("", "demo", role, version)
            response = await self.events.post(url, data=body, headers=headers)
            assert response.status == 202
        return time.monotonic() - started

    async def samples(self, name: str) -> dict[tuple[tuple[str, str], ...], float]:
        text = await (await self.api.get("/metrics")).text()
        return {
            tuple(sorted((k, v) for k, v in s.labels.items() if k != "deployment")): s.value
            for family in text_string_to_metric_families(text)
            for s in family.samples
            if s.name == name and s.value
        }

    async def outcomes(self) -> dict[str, float]:
        got = await self.samples("modeldeploy_joiner_pair_samples_total")
        return {dict(k)["outcome"]: v for k, v in got.items()}

    async def settle(self) -> None:
        while self.joiner._sampled:
            await asyncio.sleep(0.02)


@pytest_asyncio.fixture
async def make_stack(tmp_path: Path) -> AsyncIterator[Callable[..., Any]]:
    closers: list[Any] = []

    async def make(
        share: float, rate: float, canary_delay_s: float = 0.0, label_rate: float = 100.0
    ) -> Stack:
        arms = {"stable": SlowArm("1"), "canary": SlowArm("2", canary_delay_s, flip=True)}
        urls = {}
        for role, arm in arms.items():
            server = TestServer(arm.app(), host="127.0.0.1")
            await server.start_server()
            closers.append(server)
            urls[role] = {"url": str(server.make_url("")).rstrip("/"), "version": arm.version}
        path = tmp_path / "arms.json"
        path.write_text(json.dumps({"deployments": {"demo": {"model": "m", "arms": urls}}}))
        config = JoinerConfig(None, JoinBook(None), ArmsFile(path), rescores_per_s=label_rate,
                              pair_share=share, pair_rate=rate,
                              pair_rng=random.Random(7))  # fmt: skip
        joiner = Joiner(config)
        api = TestClient(TestServer(joiner.api_app()))
        events = TestClient(TestServer(joiner.events_app()))
        await api.start_server()
        await events.start_server()
        closers.extend((events, api))
        return Stack(joiner, events, api, arms)

    yield make
    for closer in reversed(closers):
        await closer.close()


async def test_a_drawn_response_is_paired_in_the_background_and_counted(make_stack) -> None:
    stack = await make_stack(share=1.0, rate=50.0, canary_delay_s=1.0)
    took = await stack.log("stable", "r-1", "a good film", 1)
    # The canary takes a second to answer; the agent's posts did not wait for it.
    assert took < 0.5, took
    assert stack.joiner._sampled
    await stack.settle()
    assert [text for _, _, text in stack.arms["canary"].calls] == ["a good film"]
    assert stack.arms["canary"].calls[0][1].startswith(RESCORE_CE_ID_PREFIX)
    paired = await stack.samples("modeldeploy_paired_predictions_total")
    assert paired == {
        (("canary_label", "negative"), ("canary_version", "2"), ("stable_label", "positive"),
         ("stable_version", "1")): 1.0,
    }  # fmt: skip
    assert await stack.outcomes() == {"paired": 1.0}
    # The pair is booked: a label for it later is paired without a second re-score.
    item = stack.joiner.book.items.get("r-1")
    assert item is not None and set(item.predictions) == {"stable", "canary"}
    status = await stack.api.post("/v1/feedback", json={"request_id": "r-1", "label": 1})
    assert status.status == 200
    assert len(stack.arms["canary"].calls) == 1


async def test_a_canary_response_is_paired_on_stable(make_stack) -> None:
    stack = await make_stack(share=1.0, rate=50.0)
    await stack.log("canary", "c-1", "a dull film", 1)  # canary said positive (flipped)
    await stack.settle()
    assert [text for _, _, text in stack.arms["stable"].calls] == ["a dull film"]
    paired = await stack.samples("modeldeploy_paired_predictions_total")
    assert [(dict(k)["stable_label"], dict(k)["canary_label"], v) for k, v in paired.items()] == [
        ("negative", "positive", 1.0)
    ]


async def test_the_joiners_own_rescores_are_never_drawn(make_stack) -> None:
    stack = await make_stack(share=1.0, rate=50.0)
    # The arm's agent logs a re-score under the joiner's Ce-Id, with the arm's own id.
    await stack.log("canary", "own-9", "a good film", 0, ce_id=RESCORE_CE_ID_PREFIX + "abc")
    await stack.settle()
    assert stack.arms["stable"].calls == []
    assert await stack.outcomes() == {}
    assert stack.joiner.book.items.get("own-9") is not None  # recorded all the same


async def test_a_share_of_zero_pairs_nothing(make_stack) -> None:
    stack = await make_stack(share=0.0, rate=50.0)
    for i in range(20):
        await stack.log("stable", f"r-{i}", "a good film", 1)
    await stack.settle()
    assert stack.arms["canary"].calls == []
    assert await stack.samples("modeldeploy_paired_predictions_total") == {}


async def test_the_share_is_drawn_at_random_within_the_budget(make_stack) -> None:
    stack = await make_stack(share=0.5, rate=1000.0)
    for i in range(200):
        await stack.log(("stable", "canary")[i % 2], f"r-{i}", f"film {i}", 1)
    await stack.settle()
    outcomes = await stack.outcomes()
    # seeded draws: about half of 200 (binomial sd ~7), all paired
    assert set(outcomes) == {"paired"} and 70 <= outcomes["paired"] <= 130, outcomes


async def test_a_burst_is_held_to_the_budget(make_stack) -> None:
    rate = 5.0
    stack = await make_stack(share=1.0, rate=rate)
    started = time.monotonic()
    for i in range(200):
        role = ("stable", "canary")[i % 2]
        await stack.log(role, f"r-{i}", f"film {i} good" if i % 3 else f"film {i}", 1)
    elapsed = time.monotonic() - started
    await stack.settle()
    outcomes = await stack.outcomes()
    # a token bucket of one second's worth, refilled at `rate`, whatever was drawn
    rescores = len(stack.arms["stable"].calls) + len(stack.arms["canary"].calls)
    assert rescores == outcomes["paired"] <= rate + rate * elapsed, (outcomes, elapsed)
    # the draw probability fell as the observed rate of responses rose past the budget
    assert stack.joiner.sampler.probability < 1.0
    text = await (await stack.api.get("/metrics")).text()
    assert f"modeldeploy_joiner_pair_share_ratio {stack.joiner.sampler.probability!r}" in text
    paired = await stack.samples("modeldeploy_paired_predictions_total")
    assert sum(paired.values()) == outcomes["paired"]


async def test_a_clump_of_drawn_responses_reaches_the_other_arm_one_gap_apart(
    make_stack,
) -> None:
    """Re-scores count in the arm's latency like its user traffic: paced, never a burst."""
    stack = await make_stack(share=1.0, rate=8.0, label_rate=0.0)
    for i in range(4):
        await stack.log("stable", f"r-{i}", f"film {i}", 1)
    await stack.settle()
    arrivals = [t for t, _, _ in stack.arms["canary"].calls]
    gap = stack.joiner.rescorer.pacer.gap_s
    assert len(arrivals) == 4 and gap == 0.5 / 8.0
    # a burst would arrive within milliseconds; connection set-up jitters the first one
    assert all(b - a >= gap / 2 for a, b in pairwise(arrivals)), arrivals
