"""``PUT /router/arms``: arms change without a restart and without a failed request.

Fake arms (conftest.py); the removed canary is a separate process that answers slowly, so
requests are in flight when it is removed. The router answers the PUT only after they
finished, and the test SIGKILLs the canary right after that answer: a request still on its
way to it would fail.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys

import aiohttp
import pytest

from modeldeploy.serving.router import Split
from tests.integration.serving_router.conftest import Setup
from tests.support.processes import free_port

pytestmark = pytest.mark.asyncio


SLOW_ARM = """
import asyncio, sys
from aiohttp import web

async def predict(request):
    body = await request.json()
    await asyncio.sleep(float(sys.argv[2]))
    rid = request.headers["x-request-id"]
    item = {"id": rid, "label": "positive", "label_index": 1}
    return web.json_response({"predictions": [item], "request_id": rid, "model_version": "2"})

app = web.Application()
app.router.add_post(r"/v1/models/{name:[^/:]+}:predict", predict)
app.router.add_get("/ready", lambda request: web.json_response({}))
web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), print=None)
"""


async def _slow_arm(delay: float) -> tuple[subprocess.Popen[bytes], str]:
    """A canary arm in its own process that waits ``delay`` seconds before each answer."""
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-c", SLOW_ARM, str(port), str(delay)])
    url = f"http://127.0.0.1:{port}"
    async with aiohttp.ClientSession() as session:
        for _ in range(200):
            try:
                async with session.get(url + "/ready") as response:
                    if response.status == 200:
                        return proc, url
            except aiohttp.ClientError:
                await asyncio.sleep(0.05)
    proc.kill()
    raise AssertionError("the slow arm did not start")


async def _load(session: aiohttp.ClientSession, url: str, n: int) -> list[tuple[int, str]]:
    async def one(i: int) -> tuple[int, str]:
        body = {"instances": [f"good film {i}"]}
        async with session.post(f"{url}/v1/models/m:predict", json=body) as response:
            await response.read()
            return response.status, response.headers.get("x-modeldeploy-arm", "")

    return await asyncio.gather(*(one(i) for i in range(n)))


async def test_removing_the_canary_drains_it_and_no_request_fails(start_router) -> None:
    setup: Setup = await start_router(split=Split(50.0, 0.0))
    proc, canary_url = await _slow_arm(0.5)
    try:
        results, after = await _remove_while_busy(setup, proc, canary_url)
    finally:
        proc.kill()
        proc.wait()
    assert [status for status, _ in results + after] == [200] * 60
    assert {arm for _, arm in results} == {"stable", "canary"}  # both served before
    assert {arm for _, arm in after} == {"stable"}


async def _remove_while_busy(
    setup: Setup, proc: subprocess.Popen[bytes], canary_url: str
) -> tuple[list[tuple[int, str]], list[tuple[int, str]]]:
    async with aiohttp.ClientSession() as session:
        body = {"stable": setup.arms["stable"].url, "canary": canary_url, "weight": 50}
        async with session.put(f"{setup.url}/router/arms", json=body) as response:
            assert response.status == 200, await response.text()
        load = asyncio.create_task(_load(session, setup.url, 40))
        await _until_in_flight(setup)  # requests are now waiting on the slow canary
        removal = {"stable": setup.arms["stable"].url, "canary": None}
        async with session.put(f"{setup.url}/router/arms", json=removal) as response:
            answer = await response.json()
        assert response.status == 200 and answer["drained"] is True
        assert answer["canary"] == 0.0 and "canary" not in answer["arms"]
        proc.kill()  # what local mode does next: stop the removed arm (here without grace)
        proc.wait()
        return await load, await _load(session, setup.url, 20)


async def _until_in_flight(setup: Setup, at_least: int = 5, deadline_s: float = 10.0) -> None:
    """Wait until the router holds ``at_least`` requests in flight (a fixed sleep raced a
    busy CI machine). The stable fake answers at once, so several requests held means the
    slow canary holds some of them."""
    loop = asyncio.get_running_loop()
    until = loop.time() + deadline_s
    while len(setup.router._pending) < at_least:
        assert loop.time() < until, "no request reached the router in time"
        await asyncio.sleep(0.005)


async def test_promotion_swaps_the_stable_arm_in_place(start_router) -> None:
    setup: Setup = await start_router(split=Split(30.0, 100.0))
    canary_url = setup.arms["canary"].url
    async with aiohttp.ClientSession() as session:
        async with session.put(f"{setup.url}/router/arms", json={"stable": canary_url}) as r:
            assert r.status == 200 and (await r.json())["arms"] == {"stable": canary_url}
        results = await _load(session, setup.url, 10)
    assert [status for status, _ in results] == [200] * 10
    assert len(setup.arms["canary"].predictions) >= 10  # the promoted arm serves everything


@pytest.mark.parametrize(
    "body",
    [{}, {"stable": "not a url"}, {"stable": "http://x", "canary": None, "weight": 5},
     {"stable": "http://x", "extra": 1}],
)  # fmt: skip
async def test_a_bad_arms_body_is_refused_and_changes_nothing(start_router, body) -> None:
    setup: Setup = await start_router()
    before = dict(setup.router.urls)
    url = f"{setup.url}/router/arms"
    async with aiohttp.ClientSession() as session, session.put(url, json=body) as response:
        assert response.status == 400
        assert (await response.json())["code"] == "bad_input"
    assert setup.router.urls == before


async def test_a_label_for_a_removed_arm_reaches_the_arms_still_there(start_router) -> None:
    setup: Setup = await start_router(split=Split(100.0, 100.0))
    async with aiohttp.ClientSession() as session:
        body = {"instances": ["good film"], "id": "r-1"}
        async with session.post(f"{setup.url}/v1/models/m:predict", json=body) as response:
            assert response.headers["x-modeldeploy-arm"] == "canary"
        for _ in range(200):  # the paired call on stable
            if not setup.router._pending:
                break
            await asyncio.sleep(0.01)
        removal = {"stable": setup.arms["stable"].url, "canary": None}
        async with session.put(f"{setup.url}/router/arms", json=removal) as response:
            assert response.status == 200
        label = {"request_id": "r-1", "label": 1}
        async with session.post(f"{setup.url}/v1/feedback", json=label) as response:
            answer = await response.json()
    assert response.status == 200 and set(answer["arms"]) == {"stable"}
    assert len(setup.arms["stable"].feedback) == 1 and not setup.arms["canary"].feedback
