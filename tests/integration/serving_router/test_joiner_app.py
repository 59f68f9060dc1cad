"""The joiner's HTTP surface in process: events in as KServe's agent posts them, labels with
the platform's credential, refusals that change no count, pairing on a fake canary arm."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from aiohttp.test_utils import TestClient, TestServer
from prometheus_client.parser import text_string_to_metric_families

from modeldeploy.serving.auth import Auth, RateLimiter, TokenSet
from modeldeploy.serving.contract.ids import IdIssuer
from modeldeploy.serving.contract.joiner import logger_url
from modeldeploy.serving.joiner.app import Joiner, JoinerConfig
from modeldeploy.serving.joiner.book import JoinBook
from modeldeploy.serving.joiner.pairing import ArmsFile
from tests.integration.serving_router.conftest import FakeArm
from tests.support.joiner_cloudevents import Agent

pytestmark = pytest.mark.asyncio
LABEL = "label-token-0123456789abcdef"
CONTROL = "control-token-0123456789abcdef"


@dataclass
class Stack:
    joiner: Joiner
    api: TestClient
    events: TestClient
    canary: FakeArm

    async def log(self, role: str, version: str, request: dict[str, Any],
                  answer: dict[str, Any], pod: str = "pod-a",
                  namespace: str = "ml") -> str:  # fmt: skip
        """Post one call's two events as the agent of ``pod`` in ``namespace`` (KServe's
        ``Ce-Namespace`` is the InferenceService's, which the arms key names)."""
        url = logger_url("", "demo", role, version)
        outcome = ""
        agent = Agent(pod, namespace=namespace)
        for headers, body in agent.events(json.dumps(request).encode(),
                                          json.dumps(answer).encode()):  # fmt: skip
            response = await self.events.post(url, data=body, headers=headers)
            assert response.status == 202
            outcome = (await response.json())["outcome"]
        return outcome

    async def label(self, request_id: str, label: Any, token: str | None = LABEL) -> Any:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        body = {"request_id": request_id, "label": label}
        response = await self.api.post("/v1/feedback", json=body, headers=headers)
        return response.status, await response.json()

    async def counts(self, name: str) -> dict[tuple[tuple[str, str], ...], float]:
        text = await (await self.api.get("/metrics")).text()
        return {
            tuple(sorted(s.labels.items())): s.value
            for family in text_string_to_metric_families(text)
            for s in family.samples
            if s.name == name and s.value
        }


def v1(request_id: str, index: int, version: str) -> dict[str, Any]:
    names = ("negative", "positive")
    return {
        "predictions": [{"id": request_id, "label": names[index], "label_index": index,
                         "probabilities": {"negative": 0.4, "positive": 0.6}}],
        "request_id": request_id, "model_version": version,
    }  # fmt: skip


@pytest_asyncio.fixture
async def stack(tmp_path: Path) -> AsyncIterator[Stack]:
    canary = FakeArm("2")
    server = TestServer(canary.app(), host="127.0.0.1")
    await server.start_server()
    canary.base_url = str(server.make_url("")).rstrip("/")
    arms = tmp_path / "arms.json"
    arms.write_text(
        json.dumps(
            {
                "deployments": {
                    "demo": {
                        "model": "demo",
                        "arms": {
                            "stable": "http://127.0.0.1:9",
                            "canary": {"url": canary.base_url, "version": "2"},
                        },
                    }
                }
            }
        )
    )
    auth = Auth(TokenSet([LABEL.encode()], "labels"), TokenSet([CONTROL.encode()], "control"),
                RateLimiter(5, 5))  # fmt: skip
    checker = IdIssuer(auth.id_key, "router")
    joiner = Joiner(JoinerConfig(auth, JoinBook(checker), ArmsFile(arms), rescores_per_s=100))
    api = TestClient(TestServer(joiner.api_app()))
    events = TestClient(TestServer(joiner.events_app()))
    await api.start_server()
    await events.start_server()
    yield Stack(joiner, api, events, canary)
    await api.close()
    await events.close()
    await server.close()


def issued(role: str) -> str:
    return IdIssuer(Auth(TokenSet([LABEL.encode()], "l"), TokenSet([CONTROL.encode()], "c"),
                         RateLimiter()).id_key, role).issue()  # fmt: skip


async def test_refused_labels_change_no_count_and_a_replay_counts_once(stack: Stack) -> None:
    rid = issued("stable")
    request = {"id": "c", "instances": ["good"]}
    assert await stack.log("stable", "1", request, v1(rid, 1, "1")) == "recorded"
    labelled = "modeldeploy_labelled_predictions_total"
    assert (await stack.label(rid, 1, token=None))[0] == 401
    assert (await stack.label(rid, 1, token="wrong-token-0123456789"))[0] == 403
    assert (await stack.label(issued("canary"), 1))[1]["code"] == "unknown_id"
    assert (await stack.label("m1.stable.abc.def.ghi", 1))[1]["code"] == "not_issued"
    assert (await stack.label(rid, "²"))[0] == 400
    assert await stack.counts(labelled) == {}
    status, body = await stack.label(rid, "positive")
    assert status == 200 and body == {"request_id": rid, "counted": True, "source": "feedback"}
    assert (await stack.label(rid, 0))[1]["counted"] is False  # a replay: acknowledged only
    assert (await stack.label(rid, 1, token=LABEL))[0] == 429  # over 5 labels per second
    got = {dict(k)["role"]: (dict(k), v) for k, v in (await stack.counts(labelled)).items()}
    assert set(got) == {"stable", "canary"}  # the canary scored it when the label came
    assert got["stable"] == ({"deployment": "demo", "model_version": "1", "role": "stable",
                              "source": "feedback", "correct": "true"}, 1.0)  # fmt: skip
    assert got["canary"][1] == 1.0


async def test_a_forged_or_misattributed_event_stores_nothing(stack: Stack) -> None:
    forged = IdIssuer(b"not-the-platform-key-0123", "stable").issue()
    assert await stack.log("stable", "1", {"instances": ["x"]}, v1(forged, 1, "1")) == "not_issued"
    canary_id = issued("canary")
    assert await stack.log("stable", "1", {"instances": ["x"]}, v1(canary_id, 1, "1")) == (
        "wrong_arm"
    )
    assert await stack.log("canary", "2", {"instances": ["x"]}, v1(canary_id, 1, "2")) == (
        "recorded"
    )
    # A second "response" for the same id and arm (another pod, another answer) changes nothing.
    assert await stack.log("canary", "2", {"instances": ["x"]}, v1(canary_id, 0, "2"),
                           pod="pod-b") == "duplicate"  # fmt: skip
    assert len(stack.joiner.book.items) == 1
    response = await stack.events.post("/v1/events?deployment=demo", data=b"{}")
    assert (await response.json())["outcome"] == "bad_event"


async def test_a_label_for_a_stable_only_item_is_paired_on_the_canary(stack: Stack) -> None:
    rid = issued("stable")
    request = {"id": "client-chosen", "instances": ["a good film"]}
    await stack.log("stable", "1", request, v1(rid, 0, "1"))
    status, _ = await stack.label(rid, 1)
    assert status == 200
    assert [p["texts"] for p in stack.canary.predictions] == [["a good film"]]
    paired = await stack.counts("modeldeploy_paired_outcomes_total")
    assert [(dict(k)["outcome"], dict(k)["canary_version"], v) for k, v in paired.items()] == [
        ("canary_only", "2", 1.0)
    ]
    roles = {dict(k)["role"] for k in await stack.counts("modeldeploy_labelled_predictions_total")}
    assert roles == {"stable", "canary"}
    rescores = await stack.counts("modeldeploy_joiner_rescores_total")
    assert {dict(k)["outcome"]: v for k, v in rescores.items()} == {"paired": 1.0}


async def test_ids_are_minted_for_label_holders_only(stack: Stack) -> None:
    assert (await stack.api.post("/v1/ids")).status == 401
    response = await stack.api.post("/v1/ids", headers={"Authorization": f"Bearer {LABEL}"})
    minted = (await response.json())["request_id"]
    assert stack.joiner.book.id_verdict(minted, "canary") is None  # Triton echoes it back


async def test_labels_for_two_items_of_one_request_share_one_rescore(stack: Stack) -> None:
    rid = issued("stable")
    names = ("negative", "positive")
    answer = {
        "predictions": [
            {"id": f"{rid}/{i}", "label": names[k], "label_index": k,
             "probabilities": {"negative": 0.5, "positive": 0.5}}
            for i, k in enumerate((0, 0))
        ],
        "request_id": rid, "model_version": "1",
    }  # fmt: skip
    request = {"id": "c", "instances": ["a good film", "a dull film"]}
    assert await stack.log("stable", "1", request, answer) == "recorded"
    first, second = await asyncio.gather(stack.label(f"{rid}/0", 1), stack.label(f"{rid}/1", 0))
    assert first[0] == second[0] == 200
    assert len(stack.canary.predictions) == 1  # one re-score paired both items
    paired = await stack.counts("modeldeploy_paired_outcomes_total")
    # The fake canary says "good" is positive: item 0 canary right, item 1 both right.
    assert sorted(dict(k)["outcome"] for k in paired) == ["both_correct", "canary_only"]
