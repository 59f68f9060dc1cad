"""Webhook rules: only correctly signed, fresh, first-time deliveries trigger a poll;
everything else gets 401 and is counted by outcome."""

from __future__ import annotations

import asyncio
import json

import pytest
from aiohttp.test_utils import TestClient, TestServer
from prometheus_client import REGISTRY

from modeldeploy.registry.webhooks import (
    DELIVERY_ID_HEADER,
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    Outcome,
    ReplayGuard,
    WebhookReceiver,
    check_delivery,
    sign,
)

SECRET = "s3cret"
NOW = 1_800_000_000.0
BODY = json.dumps(
    {"entity": "model_version_alias", "action": "created",
     "data": {"name": "m", "alias": "challenger", "version": "2"}}
).encode()  # fmt: skip


def headers(delivery="d1", ts=NOW, secret=SECRET, body=BODY) -> dict[str, str]:
    return {
        DELIVERY_ID_HEADER: delivery,
        TIMESTAMP_HEADER: str(int(ts)),
        SIGNATURE_HEADER: sign(secret, delivery, str(int(ts)), body),
    }


@pytest.mark.parametrize(
    ("hdrs", "body", "outcome"),
    [
        (headers(), BODY, Outcome.ACCEPTED),
        ({DELIVERY_ID_HEADER: "d1", TIMESTAMP_HEADER: str(int(NOW))}, BODY, Outcome.UNSIGNED),
        (headers(secret="wrong"), BODY, Outcome.FORGED),
        (headers(), BODY.replace(b"challenger", b"champion"), Outcome.FORGED),  # body altered
        ({**headers(), DELIVERY_ID_HEADER: "d2"}, BODY, Outcome.FORGED),  # id swapped
        ({**headers(), SIGNATURE_HEADER: "v1,!!notbase64"}, BODY, Outcome.FORGED),
        (headers(ts=NOW - 301), BODY, Outcome.STALE),
        (headers(ts=NOW + 301), BODY, Outcome.STALE),
        (headers(ts=NOW - 299), BODY, Outcome.ACCEPTED),
    ],
    ids=["valid", "unsigned", "wrong-secret", "altered-body", "swapped-id", "garbage-signature",
         "too-old", "from-the-future", "inside-window"],
)  # fmt: skip
def test_check_delivery_classifies(hdrs, body, outcome) -> None:
    guard = ReplayGuard(window=600)
    assert (
        check_delivery(hdrs, body, secrets=[SECRET], guard=guard, tolerance=300, now=NOW) is outcome
    )


def test_any_of_several_secrets_or_signatures_is_accepted_for_rotation() -> None:
    h = headers(secret="new")
    h[SIGNATURE_HEADER] = "v1,AAAA " + h[SIGNATURE_HEADER]
    guard = ReplayGuard(window=600)
    got = check_delivery(h, BODY, secrets=["old", "new"], guard=guard, tolerance=300, now=NOW)
    assert got is Outcome.ACCEPTED


def test_replay_guard_memory_is_bounded_by_capacity_and_window() -> None:
    guard = ReplayGuard(window=10, capacity=3)
    for i in range(5):
        guard.remember(f"d{i}", now=100 + i)
    assert len(guard) == 3 and not guard.seen("d0") and guard.seen("d4")
    guard.remember("late", now=200)
    assert len(guard) == 1 and guard.seen("late")


def _count(outcome: str) -> float:
    value = REGISTRY.get_sample_value("modeldeploy_webhook_deliveries_total", {"outcome": outcome})
    return value or 0.0


def test_receiver_answers_401_counts_refusals_and_nudges_on_valid_events() -> None:
    events = []
    receiver = WebhookReceiver(SECRET, events.append, clock=lambda: NOW)
    before = {o: _count(o) for o in ("accepted", "forged", "replayed", "unsigned", "malformed")}

    async def scenario() -> list[int]:
        async with TestClient(TestServer(receiver.app())) as client:
            statuses = []
            for hdrs, body in (
                (headers(), BODY),
                (headers(), BODY),  # the same delivery again: replay
                (headers(delivery="d3", secret="guess"), BODY),
                ({}, BODY),
                (headers(delivery="d4", body=b"[1]"), b"[1]"),
            ):
                resp = await client.post("/webhooks/mlflow", data=body, headers=hdrs)
                statuses.append(resp.status)
            return statuses

    assert asyncio.run(scenario()) == [200, 401, 401, 401, 400]
    assert [(e.model, e.alias, e.version, e.event) for e in events] == [
        ("m", "challenger", "2", "model_version_alias.created")
    ]
    for outcome in ("accepted", "replayed", "forged", "unsigned", "malformed"):
        assert _count(outcome) == before[outcome] + 1, outcome
