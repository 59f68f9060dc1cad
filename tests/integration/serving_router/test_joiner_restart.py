"""The joiner's HTTP surface across a restart, in process: a clean stop commits the book, a
new joiner over the same state file joins labels for what the old one recorded."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from aiohttp.test_utils import TestClient, TestServer

from modeldeploy.serving.contract.joiner import logger_url
from modeldeploy.serving.joiner.app import Joiner, JoinerConfig
from modeldeploy.serving.joiner.book import JoinBook
from modeldeploy.serving.joiner.journal import GROUP_DELAY_S, Journal
from modeldeploy.serving.joiner.pairing import ArmsFile
from tests.integration.serving_router.test_joiner_app import v1
from tests.support.joiner_cloudevents import Agent

pytestmark = pytest.mark.asyncio


async def _started(state: Path) -> tuple[Joiner, TestClient, TestClient]:
    book = JoinBook(None, journal=Journal(state, ttl_s=3600, capacity=1000))
    book.restore()
    joiner = Joiner(JoinerConfig(None, book, ArmsFile(None)))
    api, events = (
        TestClient(TestServer(joiner.api_app())),
        TestClient(TestServer(joiner.events_app())),
    )
    await api.start_server()
    await events.start_server()
    return joiner, api, events


async def _log(events: TestClient, request_id: str, index: int) -> None:
    agent = Agent("pod-a")
    request = json.dumps({"instances": ["a film"]}).encode()
    for headers, body in agent.events(request, json.dumps(v1(request_id, index, "1")).encode()):
        response = await events.post(logger_url("", "demo", "stable", "1"), data=body,
                                     headers=headers)  # fmt: skip
        assert response.status == 202


async def _label(api: TestClient, request_id: str) -> dict[str, object]:
    response = await api.post("/v1/feedback", json={"request_id": request_id, "label": 1})
    assert response.status == 200, await response.text()
    return await response.json()


async def test_a_clean_stop_and_a_new_joiner_lose_nothing(tmp_path: Path) -> None:
    state = tmp_path / "book.sqlite"
    _, api, events = await _started(state)
    await _log(events, "counted", 1)
    await _log(events, "waiting", 0)
    assert (await _label(api, "counted"))["counted"] is True
    health = await (await api.get("/healthz")).json()
    assert health["state_file"] == str(state) and health["state_file_errors"] == 0
    await api.close()  # the API app's cleanup closes the journal: a last commit
    await events.close()

    _, api, events = await _started(state)
    try:
        assert (await _label(api, "counted"))["counted"] is False  # counted once, ever
        assert (await _label(api, "waiting"))["counted"] is True
        await _log(events, "new", 1)
        await asyncio.sleep(2 * GROUP_DELAY_S)  # the flusher commits without a stop
        db = Journal(state, ttl_s=3600, capacity=1000)
        assert {row.placed.item_id for row in db.predictions()} == {"counted", "waiting", "new"}
        assert db.labelled_ids() == {"counted", "waiting"}
        db.close()
    finally:
        await api.close()
        await events.close()
