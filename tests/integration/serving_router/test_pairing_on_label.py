"""Pairing on label arrival, against real routers in front of two real predictor processes.

Stable serves ``tiny`` (version 1), canary ``tiny-distilbert`` (version 2), both with token
files (local mode's layout, so ids are the router's signed ones) and no share-based
pairing: every request is scored by one arm only, and a pair can only come from a label.
Judged by the counts the analysis reads: ``modeldeploy_paired_outcomes_total`` on the
router and ``modeldeploy_labelled_predictions_total`` on each arm.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from tests.support.two_arms import TwoArms, call, metric_sum, two_arms

pytestmark = pytest.mark.slow
TEXT = "a warm, funny and beautifully made film"
PAIRED = "modeldeploy_paired_outcomes_total"
LABELLED = "modeldeploy_labelled_predictions_total"
ROUTED = "modeldeploy_router_requests_total"


@pytest.fixture(scope="module")
def arms(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TwoArms]:
    """Both arms; each test starts its router (weight 0, no share-based pairing)."""
    with two_arms(tmp_path_factory.mktemp("pair-on-label")) as pair:
        yield pair


def predict(router: str, texts: list[str] | None = None) -> str:
    status, answer, _ = call(
        "POST", f"{router}/v1/models/m:predict", {"instances": texts or [TEXT]}
    )
    assert status == 200, answer
    return str(answer["request_id"])


def label(arms: TwoArms, router: str, item_id: str, value: int = 1) -> dict[str, object]:
    status, body, _ = call(
        "POST", f"{router}/v1/feedback", {"request_id": item_id, "label": value}, arms.label
    )
    assert status == 200, body
    return dict(body)


def snapshot(arms: TwoArms, router: str) -> dict[str, float]:
    out = {role: metric_sum(url, LABELLED) for role, url in arms.urls.items()}
    out["paired"] = metric_sum(router, PAIRED)
    # Requests the router sent to an arm because a label arrived.
    out["rescored"] = metric_sum(router, ROUTED, purpose="label")
    return out


def test_a_label_for_a_request_one_arm_scored_is_paired_once(arms: TwoArms) -> None:
    router = arms.router("router-default", "--seed", "3")
    stable_only = predict(router)
    before = snapshot(arms, router)
    assert label(arms, router, stable_only) == {"request_id": stable_only, "counted": True}
    after = snapshot(arms, router)
    # One re-score on the canary, one paired outcome, and the label reached both arms.
    assert after == {
        "stable": before["stable"] + 1,
        "canary": before["canary"] + 1,
        "paired": before["paired"] + 1,
        "rescored": before["rescored"] + 1,
    }
    # A replayed label: acknowledged, nothing re-scored, paired or labelled again.
    assert label(arms, router, stable_only)["counted"] is False
    assert snapshot(arms, router) == after

    # The other way round: a canary-only request is re-scored on stable. Two texts, one
    # re-score: the second item's label finds both arms already.
    status, _, _ = call("PUT", f"{router}/router/weights", {"canary": 100}, arms.control)
    assert status == 200
    canary_only = predict(router, [TEXT, "a dull, tedious film"])
    for index in (0, 1):
        assert label(arms, router, f"{canary_only}/{index}", index)["counted"] is True
    final = snapshot(arms, router)
    assert final == {
        "stable": after["stable"] + 2,
        "canary": after["canary"] + 2,
        "paired": after["paired"] + 2,
        "rescored": after["rescored"] + 1,
    }


def test_the_rescore_budget_is_honoured_and_the_rest_stay_unpaired_labels(arms: TwoArms) -> None:
    rate = 1.0
    router = arms.router("router-budget", "--seed", "3", "--pair-on-label-rate", str(rate))
    ids = [predict(router) for _ in range(8)]
    before = snapshot(arms, router)
    started = time.monotonic()
    for item_id in ids:
        assert label(arms, router, item_id)["counted"] is True
    elapsed = time.monotonic() - started
    after = snapshot(arms, router)
    paired = after["paired"] - before["paired"]
    # A bucket of one second's worth (1), refilled at the rate while the labels went in.
    allowed = 1 + int(elapsed * rate)
    assert 1 <= paired <= allowed, (paired, elapsed)
    assert after["rescored"] - before["rescored"] == paired
    assert after["canary"] - before["canary"] == paired
    # Every label still counts, on the arm that served it, as an unpaired label.
    assert after["stable"] - before["stable"] == len(ids)
    print(f"budget {rate:g}/s: {len(ids)} labels in {elapsed:.2f} s, {paired:g} paired")
