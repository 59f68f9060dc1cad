"""Attacks on the label path, against a real router in front of two real predictor processes.

Stable serves ``tiny`` (version 1), canary ``tiny-distilbert`` (version 2), the router splits
50/50 and pairs every canary request, all with token files (local mode's layout). Every
attack is judged by the counters the analysis reads (``modeldeploy_labelled_predictions_total``
on each arm, ``modeldeploy_paired_outcomes_total`` on the router): an attack that leaves them
unchanged failed. Everything is loopback, bounded, and stops by itself.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.support.processes import ManagedProcess
from tests.support.two_arms import call, flood_labels, metric_sum, two_arms

pytestmark = pytest.mark.slow
TEXT = "a warm, funny and beautifully made film"
FLOOD = 50_000


@dataclass
class Stack:
    router: str
    arms: dict[str, str]
    label: str
    control: str
    router_proc: ManagedProcess


def post_label(
    url: str, request_id: str, label: int, token: str | None
) -> tuple[int, Any, dict[str, str]]:
    return call("POST", f"{url}/v1/feedback", {"request_id": request_id, "label": label}, token)


def decision_counts(stack: Stack) -> dict[str, float]:
    """Every count the analysis decides on."""
    out = {
        role: metric_sum(url, "modeldeploy_labelled_predictions_total")
        for role, url in stack.arms.items()
    }
    out["paired"] = metric_sum(stack.router, "modeldeploy_paired_outcomes_total")
    return out


def predict(url: str, body: dict[str, Any] | None = None) -> tuple[str, dict[str, str]]:
    status, answer, headers = call(
        "POST", f"{url}/v1/models/m:predict", body or {"instances": [TEXT]}
    )
    assert status == 200, answer
    assert answer["request_id"] == headers["x-request-id"]
    return answer["request_id"], headers


def rss_kib(proc: ManagedProcess) -> int:
    for line in Path(f"/proc/{proc.pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with two_arms(tmp_path_factory.mktemp("label-auth")) as pair:
        router, router_proc = pair.router_process(
            "router", "--seed", "5", "--label-rate", "100", "--label-burst", "100",
            weight=50, paired_share=100,
        )  # fmt: skip
        yield Stack(router, pair.urls, pair.label, pair.control, router_proc)


def test_anonymous_or_wrong_credential_with_a_real_id_changes_no_count(stack: Stack) -> None:
    request_id, _ = predict(stack.router)
    before = decision_counts(stack)
    label = {"request_id": request_id, "label": 0}
    for url in (stack.router, *stack.arms.values()):  # the arms are reachable too
        status, body, reply_headers = call("POST", f"{url}/v1/feedback", label)
        assert (status, body["code"]) == (401, "unauthenticated"), url
        assert reply_headers["www-authenticate"].startswith("Bearer")
        for wrong in ("not-the-token-0123456789", stack.label + "x"):
            status, body, _ = call("POST", f"{url}/v1/feedback", label, token=wrong)
            assert (status, body["code"]) == (403, "forbidden"), url
    assert decision_counts(stack) == before
    # The same id with the label token counts, once.
    status, body, _ = call("POST", f"{stack.router}/v1/feedback", label, token=stack.label)
    assert (status, body) == (200, {"request_id": request_id, "counted": True})
    after = decision_counts(stack)
    assert after["stable"] == before["stable"] + 1  # stable scored it (primary or paired)


def test_a_replayed_or_reused_id_counts_once(stack: Stack) -> None:
    request_id, _ = predict(stack.router)
    label = {"request_id": request_id, "label": 1}
    first = call("POST", f"{stack.router}/v1/feedback", label, token=stack.label)
    assert first[0] == 200 and first[1]["counted"] is True
    once = decision_counts(stack)
    # Re-use: a new request that names the old id gets a fresh id of the router's.
    reused, _ = predict(stack.router, {"instances": ["a dull film"], "id": request_id})
    assert reused != request_id
    # Replay, to the router and straight at each arm: acknowledged, never counted again.
    for url in (stack.router, *stack.arms.values()):
        status, body, _ = call("POST", f"{url}/v1/feedback", label, token=stack.label)
        assert status in (200, 404) and not body.get("counted"), (url, body)
    assert decision_counts(stack) == once


def test_ids_the_platform_never_issued_or_another_arm_issued_are_refused(stack: Stack) -> None:
    before = decision_counts(stack)
    real, _ = predict(stack.router)
    forged = real[:-1] + ("A" if real[-1] != "A" else "B")
    for url in (stack.router, *stack.arms.values()):
        other_origin = ".".join([*real.split(".")[:1], "Y1pnvyV4lMA", *real.split(".")[2:]])
        for guess in ("client-chosen-id", forged, other_origin):
            status, body, _ = call(
                "POST", f"{url}/v1/feedback", {"request_id": guess, "label": 1}, token=stack.label
            )
            assert (status, body["code"]) == (404, "not_issued"), (url, guess)
    # A prediction the stable predictor served directly, labelled at the canary predictor.
    stable_id, _ = predict(stack.arms["stable"], {"instances": [TEXT], "id": "mine"})
    assert stable_id.startswith("m2.") and "stable" not in stable_id  # the origin is sealed
    status, body, _ = call(
        "POST",
        f"{stack.arms['canary']}/v1/feedback",
        {"request_id": stable_id, "label": 1},
        token=stack.label,
    )
    assert (status, body["code"]) == (409, "wrong_arm")
    # ... and at the router, which did not issue it.
    status, body, _ = post_label(stack.router, stable_id, 1, stack.label)
    assert (status, body["code"]) == (404, "not_issued")
    assert decision_counts(stack) == before


def test_the_router_shows_no_arm_and_no_prediction_to_clients(stack: Stack) -> None:
    request_id, headers = predict(stack.router)
    assert "x-modeldeploy-arm" not in headers
    assert "arms" not in call("GET", f"{stack.router}/healthz")[1]
    status, body, _ = post_label(stack.router, request_id, 1, stack.label)
    assert status == 200 and set(body) == {"request_id", "counted"}


def test_weights_need_the_control_token(stack: Stack) -> None:
    url = f"{stack.router}/router/weights"
    for token, expected in ((None, 401), ("nope-0123456789abcdef", 403), (stack.label, 403)):
        assert call("PUT", url, {"canary": 100}, token=token)[0] == expected
        assert call("GET", url, token=token)[0] == expected
    status, weights, _ = call("GET", url, token=stack.control)
    assert status == 200 and weights["canary"] == 50.0  # no refused PUT moved it
    status, weights, _ = call("PUT", url, {"canary": 30}, token=stack.control)
    assert status == 200 and weights["canary"] == 30.0
    assert call("PUT", url, {"canary": 50}, token=stack.control)[0] == 200


@pytest.mark.long
def test_a_flood_of_labels_keeps_memory_flat_and_the_router_up(stack: Stack) -> None:
    for _ in range(200):  # warm the router's allocator on the same path first
        call("POST", f"{stack.router}/v1/feedback", {"request_id": "warm", "label": 1})
    before, rss_before = decision_counts(stack), rss_kib(stack.router_proc)
    started = time.monotonic()
    statuses = asyncio.run(flood_labels(stack.router, stack.label, FLOOD))
    elapsed = time.monotonic() - started
    rss_after = rss_kib(stack.router_proc)
    print(
        f"\nflood: {FLOOD} label posts in {elapsed:.1f}s ({FLOOD / elapsed:.0f}/s), "
        f"statuses {dict(statuses)}, router RSS {rss_before} -> {rss_after} KiB"
    )
    assert sum(statuses.values()) == FLOOD
    assert set(statuses) <= {401, 403, 404, 429}
    by_token = Counter(i % 3 for i in range(FLOOD))
    assert (statuses[401], statuses[403]) == (by_token[0], by_token[1])
    assert statuses[404] + statuses[429] == by_token[2]
    assert statuses[429] > 0  # the label token's rate limit held
    assert rss_after - rss_before < 20 * 1024, "router memory grew with the flood"
    assert decision_counts(stack) == before
    assert stack.router_proc.alive()
    time.sleep(1.5)  # the label token's bucket refills
    request_id, _ = predict(stack.router)
    status, body, _ = post_label(stack.router, request_id, 1, stack.label)
    assert status == 200 and body["counted"] is True
