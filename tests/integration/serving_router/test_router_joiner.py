"""The router as KServe's logger agent (local mode): events to a joiner, labels through it.

A real joiner application (in process) behind the router: what the router posts is what
the joiner records, a label posted to the router is counted once at the joiner and paired,
the router and the arms count nothing themselves, and a joiner that does not answer never
slows a prediction (its events are dropped over the bound, and counted).
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Callable
from itertools import pairwise
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from prometheus_client.parser import text_string_to_metric_families

from modeldeploy.serving.contract.cloudevents import Agent
from modeldeploy.serving.contract.joiner import arms_entry, logger_url
from modeldeploy.serving.joiner.app import Joiner, JoinerConfig
from modeldeploy.serving.joiner.book import JoinBook
from modeldeploy.serving.joiner.pairing import ArmsFile
from modeldeploy.serving.router import Split
from modeldeploy.serving.router.logger import LOGGED_EVENTS

pytestmark = pytest.mark.asyncio


def _sums(text: str, *names: str) -> dict[str, float]:
    out = dict.fromkeys(names, 0.0)
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name in out:
                out[sample.name] += sample.value
    return out


def _by_outcome(text: str, name: str) -> dict[str, float]:
    return {
        s.labels["outcome"]: s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.name == name
    }


@pytest_asyncio.fixture
async def joiner() -> AsyncIterator[tuple[Joiner, str, str]]:
    """A joiner without credentials (the router has none either): (joiner, api, events)."""
    app = Joiner(JoinerConfig(None, JoinBook(None), ArmsFile(None)))
    api = TestServer(app.api_app(), host="127.0.0.1")
    events = TestServer(app.events_app(), host="127.0.0.1")
    await api.start_server()
    await events.start_server()
    yield app, str(api.make_url("")).rstrip("/"), str(events.make_url("")).rstrip("/")
    await events.close()
    await api.close()


@pytest.mark.parametrize("label_view", [False, True], ids=["full-view", "label-view"])
async def test_a_label_at_the_router_is_counted_once_at_the_joiner_and_paired(
    start_router: Callable[..., Any], joiner: tuple[Joiner, str, str], label_view: bool
) -> None:
    """Label view: the arms' answers name no version and no probabilities; the router logs
    each under its arms table's version and the joiner counts by it."""
    app, api, events = joiner
    setup = await start_router(
        split=Split(canary=100.0, paired_share=100.0), joiner_url=api, joiner_events_url=events,
        label_view=label_view,
    )  # fmt: skip
    async with httpx.AsyncClient(timeout=30) as client:
        body = {"instances": ["a good film"], "id": "req-1"}
        answer = await client.post(f"{setup.url}/v1/models/demo:predict", json=body)
        assert answer.status_code == 200
        label = {"request_id": "req-1", "label": "positive"}
        first = await client.post(f"{setup.url}/v1/feedback", json=label)
        assert first.status_code == 200 and first.json()["counted"] is True, first.text
        again = await client.post(f"{setup.url}/v1/feedback", json=label)
        assert again.status_code == 200 and again.json()["counted"] is False
        unknown = await client.post(f"{setup.url}/v1/feedback", json={**label, "request_id": "n"})
        assert unknown.status_code == 404 and unknown.json()["code"] == "unknown_id"
        at_joiner = (await client.get(f"{api}/metrics")).text
        at_router = (await client.get(f"{setup.url}/metrics")).text
    labelled, paired = "modeldeploy_labelled_predictions_total", "modeldeploy_paired_outcomes_total"
    # Both arms scored it (share pairing), each answer logged by the router: one label,
    # one count per arm, one pair, all at the joiner.
    assert _sums(at_joiner, labelled, paired) == {labelled: 2.0, paired: 1.0}
    assert _sums(at_router, paired) == {paired: 0.0}
    assert all(not arm.feedback for arm in setup.arms.values())  # nothing sent to the arms
    assert _by_outcome(at_router, LOGGED_EVENTS) == {"sent": 4.0, "dropped": 0.0, "failed": 0.0}
    feedback = _by_outcome(at_router, "modeldeploy_router_feedback_total")
    assert (feedback["forwarded"], feedback["duplicate"], feedback["unknown_id"]) == (1, 1, 1)
    assert app.book.lookup("req-1")[1] is not None
    versions = {
        (s.labels["role"], s.labels["model_version"])
        for family in text_string_to_metric_families(at_joiner)
        for s in family.samples
        if s.name == labelled and s.value
    }
    assert versions == {("stable", "1"), ("canary", "2")}


async def test_a_joiner_that_hangs_never_slows_a_prediction_and_drops_are_counted(
    start_router: Callable[..., Any],
) -> None:
    release = asyncio.Event()

    async def hang(_: web.Request) -> web.Response:
        await release.wait()
        return web.json_response({}, status=202)

    stuck = web.Application()
    stuck.router.add_post("/v1/events", hang)
    server = TestServer(stuck, host="127.0.0.1")
    await server.start_server()
    base = str(server.make_url("")).rstrip("/")
    try:
        setup = await start_router(canary=False, joiner_url=base, joiner_events_url=base)
        assert setup.router.logger is not None
        setup.router.logger.max_in_flight = 2
        async with httpx.AsyncClient(timeout=30) as client:
            took = []
            for i in range(6):
                started = time.monotonic()
                body = {"instances": ["a good film"], "id": f"r-{i}"}
                answer = await client.post(f"{setup.url}/v1/models/demo:predict", json=body)
                took.append(time.monotonic() - started)
                assert answer.status_code == 200
            text = (await client.get(f"{setup.url}/metrics")).text
        # The posts hang (5 s timeout) while every answer came back at once.
        assert max(took) < 2.0, took
        assert setup.router.logger.in_flight == 2
        assert _by_outcome(text, LOGGED_EVENTS)["dropped"] == 2 * 4  # 4 calls over the bound
    finally:
        release.set()
        await server.close()


async def test_the_joiners_rescores_are_paced_per_arm(tmp_path: Path) -> None:
    """A clump of labels for stable-only items re-scores on the canary one gap apart."""
    arrivals: list[float] = []

    async def canary(request: web.Request) -> web.Response:
        arrivals.append(time.monotonic())
        body = await request.json()
        rid = request.headers.get("x-request-id") or "r"
        text = body["instances"][0]
        return web.json_response(
            {"predictions": [{"label": "positive", "label_index": 1, "id": rid}],
             "request_id": rid, "model_version": "2", "text": text}
        )  # fmt: skip

    arm = web.Application()
    arm.router.add_post("/v1/models/demo:predict", canary)
    server = TestServer(arm, host="127.0.0.1")
    await server.start_server()
    arms = tmp_path / "local.demo.json"
    url = str(server.make_url("")).rstrip("/")
    arms.write_text(arms_entry("demo", "demo", {"stable": ("http://127.0.0.1:9", "1"),
                                                "canary": (url, "2")}))  # fmt: skip
    rate = 4.0  # a gap of 0.5 / 4 = 0.125 s between re-scores on one arm
    app = Joiner(JoinerConfig(None, JoinBook(None), ArmsFile(tmp_path), rescores_per_s=rate))
    api, events = TestClient(TestServer(app.api_app())), TestClient(TestServer(app.events_app()))
    await api.start_server()
    await events.start_server()
    try:
        ids = [f"req-{i}" for i in range(3)]
        for rid in ids:
            request = json.dumps({"instances": [f"good {rid}"]}).encode()
            answer = json.dumps({"predictions": [{"label": "positive", "label_index": 1}],
                                 "request_id": rid, "model_version": "1"}).encode()  # fmt: skip
            # The router's agent in local mode says namespace "local", as the arms key does.
            for headers, body in Agent("pod", namespace="local").events(request, answer):
                logged = await events.post(logger_url("", "demo", "stable", "1"), data=body,
                                           headers=headers)  # fmt: skip
                assert logged.status == 202
        labels = [api.post("/v1/feedback", json={"request_id": r, "label": 1}) for r in ids]
        answers = await asyncio.gather(*labels)
        assert [a.status for a in answers] == [200, 200, 200]
        paired = _sums(await (await api.get("/metrics")).text(),
                       "modeldeploy_paired_outcomes_total")  # fmt: skip
        assert paired == {"modeldeploy_paired_outcomes_total": 3.0}
        gaps = [b - a for a, b in pairwise(arrivals)]
        assert len(arrivals) == 3 and min(gaps) >= 0.1, gaps
    finally:
        await api.close()
        await events.close()
        await server.close()
