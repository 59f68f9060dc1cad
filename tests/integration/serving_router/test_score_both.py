"""Score-both mode over loopback HTTP: both arms get every request, the client the split's.

Fake arms (conftest.py), plus one slow arm to show the client does not wait for the pair.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from modeldeploy.serving.router import RouterConfig, Split
from modeldeploy.serving.router.app import ROUTER_KEY, serve
from tests.integration.serving_router.conftest import Setup
from tests.support.processes import free_port

pytestmark = pytest.mark.asyncio


def sample(setup: Setup, name: str, **labels: str) -> float:
    value = setup.router.metrics.registry.get_sample_value(name, {"deployment": "demo", **labels})
    return value or 0.0


async def predict(session: aiohttp.ClientSession, url: str, text: str, **body: Any) -> Any:
    async with session.post(f"{url}/v1/models/m:predict", json={"instances": [text], **body}) as r:
        assert r.status == 200, await r.text()
        return r.headers["x-modeldeploy-arm"], await r.json()


async def settle(setup: Setup) -> None:
    for _ in range(300):
        if not setup.router._pending:
            return
        await asyncio.sleep(0.01)
    raise AssertionError("background calls did not finish")


async def test_both_arms_score_every_request_and_the_client_gets_the_split_arms_answer(
    start_router: Callable[..., Any],
) -> None:
    setup = await start_router(split=Split(canary=30), score_both=True)
    answers = []
    async with aiohttp.ClientSession() as session:
        for i in range(300):
            answers.append(await predict(session, setup.url, f"good text {i}", id=f"r{i}"))
    await settle(setup)
    ids = [f"r{i}" for i in range(300)]
    for role in ("stable", "canary"):
        assert sorted(p["request_id"] for p in setup.arms[role].predictions) == sorted(ids)
    # The answer is the chosen arm's own: its version, in the proportion of the weight.
    arms = [arm for arm, _ in answers]
    assert {body["model_version"] for arm, body in answers if arm == "canary"} == {"2"}
    assert {body["model_version"] for arm, body in answers if arm == "stable"} == {"1"}
    assert abs(arms.count("canary") / 300 - 0.30) < 0.07
    for role in ("stable", "canary"):
        primary = sample(
            setup, "modeldeploy_router_requests_total", role=role, purpose="primary", protocol="v1"
        )
        paired = sample(
            setup, "modeldeploy_router_requests_total", role=role, purpose="paired", protocol="v1"
        )
        assert (primary, primary + paired) == (arms.count(role), 300)
    # Every input was compared without labels, and none is kept for a re-score.
    compared = sum(
        sample(
            setup, "modeldeploy_paired_predictions_total", stable_version="1",
            canary_version="2", stable_label=label, canary_label=label,
        )
        for label in ("negative", "positive")
    )  # fmt: skip
    assert compared == 300
    assert len(setup.router.inputs) == 0


async def test_every_label_is_a_pair_without_a_re_score(start_router: Callable[..., Any]) -> None:
    setup = await start_router(split=Split(canary=50), score_both=True, canary_wrong=True)
    async with aiohttp.ClientSession() as session:
        for i in range(40):
            await predict(session, setup.url, "good film", id=f"r{i}")
        for i in range(40):
            async with session.post(
                f"{setup.url}/v1/feedback", json={"request_id": f"r{i}", "label": "positive"}
            ) as response:
                assert response.status == 200, await response.text()
                assert set((await response.json())["arms"]) == {"stable", "canary"}
    stable_only = sample(
        setup, "modeldeploy_paired_outcomes_total", stable_version="1", canary_version="2",
        source="feedback", outcome="stable_only",
    )  # fmt: skip
    assert stable_only == 40
    for role in ("stable", "canary"):
        assert (
            sample(
                setup,
                "modeldeploy_router_requests_total",
                role=role,
                purpose="label",
                protocol="v1",
            )
            == 0
        )


async def test_at_weight_zero_the_canary_gets_nothing(start_router: Callable[..., Any]) -> None:
    setup = await start_router(split=Split(canary=0), score_both=True)
    async with aiohttp.ClientSession() as session:
        for i in range(20):
            assert (await predict(session, setup.url, f"text {i}"))[0] == "stable"
    await settle(setup)
    assert len(setup.arms["stable"].predictions) == 20
    assert setup.arms["canary"].predictions == []


async def test_the_client_does_not_wait_for_the_other_arm() -> None:
    """The chosen arm answers at once; the other takes 1.5 s. The client gets its answer in
    well under that, and the slow arm's answer still arrives and is booked as the pair."""

    def arm(version: str, delay_s: float) -> web.Application:
        async def v1(request: web.Request) -> web.Response:
            await asyncio.sleep(delay_s)
            rid = request.headers["x-request-id"]
            item = {"id": rid, "label": "positive", "label_index": 1}
            return web.json_response(
                {"predictions": [item], "request_id": rid, "model_version": version}
            )

        app = web.Application()
        app.router.add_post(r"/v1/models/{name:[^/:]+}:predict", v1)
        return app

    servers = [TestServer(arm("1", 1.5)), TestServer(arm("2", 0.0))]
    for server in servers:
        await server.start_server()
    stable, canary = (str(s.make_url("")).rstrip("/") for s in servers)
    port = free_port()
    config = RouterConfig(
        stable=stable, canary=canary, deployment="demo", split=Split(canary=100),
        score_both=True, response_detail="full",
    )  # fmt: skip
    runner = await serve(config, "127.0.0.1", port)
    router = runner.app[ROUTER_KEY]
    try:
        async with aiohttp.ClientSession() as session:
            started = time.monotonic()
            arm_name, body = await predict(session, f"http://127.0.0.1:{port}", "x", id="q")
            waited = time.monotonic() - started
        assert (arm_name, body["model_version"]) == ("canary", "2")
        assert waited < 1.0
        for _ in range(300):
            if not router._pending:
                break
            await asyncio.sleep(0.01)
        found, item = router.book.lookup("q")
        assert item is not None and set(item.predictions) == {"stable", "canary"}, found
    finally:
        await runner.cleanup()
        for server in servers:
            await server.close()
