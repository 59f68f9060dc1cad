"""Feedback joins: correct/incorrect counted per arm, unknown and expired ids are 404s,
and the same feedback delivered twice counts once."""

from __future__ import annotations

import time

import httpx
import pytest

from tests.integration.serving.scrape import scrape, value

pytestmark = pytest.mark.slow


def _predict(predictor, request_id: str, text: str = "a wonderful film") -> str:
    r = httpx.post(predictor.v1, json={"instances": [text]}, headers={"x-request-id": request_id})
    assert r.status_code == 200, r.text
    return r.json()["predictions"][0]["label"]


def _labelled(predictor, **labels: str) -> float:
    return value(scrape(predictor.url), "modeldeploy_labelled_predictions_total", **labels)


def _rejected(predictor, reason: str) -> float:
    return value(scrape(predictor.url), "modeldeploy_feedback_rejected_total", reason=reason)


def test_feedback_is_joined_and_counted_correct_or_not(tiny_predictor):
    predicted = _predict(tiny_predictor, "fb-join-1")
    other = "negative" if predicted == "positive" else "positive"
    right_before = _labelled(tiny_predictor, source="feedback", correct="true")
    wrong_before = _labelled(tiny_predictor, source="feedback", correct="false")
    r = httpx.post(
        f"{tiny_predictor.url}/v1/feedback", json={"request_id": "fb-join-1", "label": predicted}
    )
    assert r.status_code == 200 and r.json()["correct"] is True and r.json()["counted"] is True
    _predict(tiny_predictor, "fb-join-2")
    index = ["negative", "positive"].index(other)
    r = httpx.post(
        f"{tiny_predictor.url}/v1/feedback", json={"request_id": "fb-join-2", "label": index}
    )
    assert r.status_code == 200 and r.json()["correct"] is False
    assert _labelled(tiny_predictor, source="feedback", correct="true") == right_before + 1
    assert _labelled(tiny_predictor, source="feedback", correct="false") == wrong_before + 1


def test_probe_feedback_is_labelled_as_probe(tiny_predictor):
    predicted = _predict(tiny_predictor, "fb-probe-1")
    before = _labelled(tiny_predictor, source="probe")
    r = httpx.post(
        f"{tiny_predictor.url}/v1/feedback",
        json={"request_id": "fb-probe-1", "label": predicted, "source": "probe"},
    )
    assert r.status_code == 200
    assert _labelled(tiny_predictor, source="probe") == before + 1


def test_unknown_id_is_a_clear_404_and_counted(tiny_predictor):
    before = _rejected(tiny_predictor, "unknown_id")
    r = httpx.post(
        f"{tiny_predictor.url}/v1/feedback", json={"request_id": "never-seen", "label": 1}
    )
    assert r.status_code == 404
    assert r.json()["code"] == "unknown_id" and "never-seen" in r.json()["error"]
    assert _rejected(tiny_predictor, "unknown_id") == before + 1


def test_duplicate_feedback_counts_once(tiny_predictor):
    predicted = _predict(tiny_predictor, "fb-dup")
    before = _labelled(tiny_predictor, source="feedback")
    dup_before = _rejected(tiny_predictor, "duplicate")
    for _ in range(3):
        r = httpx.post(
            f"{tiny_predictor.url}/v1/feedback", json={"request_id": "fb-dup", "label": predicted}
        )
        assert r.status_code == 200
    assert r.json()["counted"] is False
    assert _labelled(tiny_predictor, source="feedback") == before + 1
    assert _rejected(tiny_predictor, "duplicate") == dup_before + 2


def test_expired_id_is_a_404_that_says_expired(tiny_predictor):
    _predict(tiny_predictor, "fb-old")
    time.sleep(2.5)  # the fixture's TTL is 2 s
    _predict(tiny_predictor, "fb-new")  # any store activity sweeps expired entries
    before = _rejected(tiny_predictor, "expired")
    r = httpx.post(f"{tiny_predictor.url}/v1/feedback", json={"request_id": "fb-old", "label": 0})
    assert r.status_code == 404 and r.json()["code"] == "expired"
    assert "expired" in r.json()["error"]
    assert _rejected(tiny_predictor, "expired") == before + 1


@pytest.mark.parametrize(
    "body",
    [{"request_id": "x"}, {"label": 1}, {"request_id": "x", "label": "neutral"}, [1, 2]],
    ids=["no_label", "no_id", "unknown_label", "not_object"],
)
def test_malformed_feedback_is_400_and_counted(tiny_predictor, body):
    before = _rejected(tiny_predictor, "bad_input")
    r = httpx.post(f"{tiny_predictor.url}/v1/feedback", json=body)
    assert r.status_code == 400 and r.json()["code"] == "bad_input"
    assert _rejected(tiny_predictor, "bad_input") == before + 1
