"""The client's view of an answer (pure parts): what the label view keeps, what reads it.

The label view must keep what an application and the platform need (class, index, request
id, class names) and drop everything that differs between two arms for the same input:
the version, the probabilities (the weights' fingerprint), the token counts and limits
(the tokenizer's). Real processes: tests/integration/serving/test_client_view.py and
tests/integration/serving_router/test_client_view.py.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from modeldeploy.operator.api.types import parse_spec
from modeldeploy.serving import codecs
from modeldeploy.serving.contract import args as cargs
from modeldeploy.serving.joiner.events import EventError, scored
from modeldeploy.serving.router.responses import predictions_in
from modeldeploy.serving.router.split import versions_update

LABELS = ["negative", "positive"]


def answers(probabilities: list[list[float]], tokens: list[list[int]], truncated: bool) -> tuple:
    """One arm's v1 answer in each view for two texts."""
    encoded = [codecs.Encoded(t, truncated) for t in tokens]
    scored = [codecs.Scored(p, int(np.argmax(p))) for p in probabilities]
    preds = codecs.make_predictions(scored, encoded, LABELS, ["r/0", "r/1"])
    request = codecs.ParsedRequest(["a", "b"], "r", "v1")
    full = codecs.v1_response(preds, LABELS, request, "m", "7", codecs.TruncationPolicy())
    return codecs.v1_label_response(preds, LABELS, request, "m"), full, preds


def test_two_arms_that_agree_answer_identically_in_the_label_view() -> None:
    """Same classes, different confidence, tokenizer and truncation: one answer, byte for byte."""
    first, first_full, _ = answers([[0.9, 0.1], [0.3, 0.7]], [[1, 2, 3], [1, 2]], False)
    second, second_full, _ = answers([[0.6, 0.4], [0.45, 0.55]], [[1, 2, 3, 4, 5], [1]], True)
    assert json.dumps(first) == json.dumps(second)
    assert first_full != second_full  # the full view tells them apart
    assert first == {
        "predictions": [
            {"id": "r/0", "label": "negative", "label_index": 0},
            {"id": "r/1", "label": "positive", "label_index": 1},
        ],
        "request_id": "r",
        "model_name": "m",
        "labels": LABELS,
    }


def test_v2_label_view_tensors_and_parameters() -> None:
    _, _, preds = answers([[0.9, 0.1], [0.3, 0.7]], [[1], [1]], False)
    arrays = codecs.v2_label_arrays(preds)
    assert list(arrays) == ["label", "label_index"]
    assert arrays["label"].tolist() == [b"negative", b"positive"]
    assert arrays["label_index"].dtype == np.int64
    assert codecs.v2_label_parameters(LABELS) == {"num_labels": 2}


def v2_answer(index: int) -> dict:
    """A label-view v2 answer as kserve writes it (``model_version`` null), 3 classes."""
    outputs = [{"name": "label", "data": ["b"]}, {"name": "label_index", "data": [index]}]
    return {"id": "r", "model_name": "m", "model_version": None,
            "parameters": {"num_labels": 3}, "outputs": outputs}  # fmt: skip


def test_label_view_answers_are_read_without_a_version() -> None:
    label, _, _ = answers([[0.9, 0.1], [0.3, 0.7]], [[1], [1]], False)
    found, request_id = predictions_in(label)
    assert request_id == "r" and [(p.model_version, p.label_index) for p in found] == [
        ("", 0),
        ("", 1),
    ]
    v2 = v2_answer(1)
    found, request_id = predictions_in(v2)
    assert request_id == "r" and [(p.model_version, p.label) for p in found] == [("", "b")]


def test_the_joiner_learns_classes_from_label_view_answers_and_versions_from_the_arm() -> None:
    label, _, _ = answers([[0.9, 0.1], [0.3, 0.7]], [[1], [1]], False)
    got = scored(json.dumps({**label, "model_version": "9"}).encode(), "2")
    assert got.classes == tuple(LABELS) and got.class_count == 2
    assert {p.model_version for p in got.predictions} == {"2"}  # the logger URL's, not "9"
    v2 = v2_answer(2)
    got = scored(json.dumps(v2).encode(), "5")
    assert got.class_count == 3 and got.predictions[0].model_version == "5"
    out_of_range = {**v2, "outputs": [{"name": "label", "data": ["b"]},
                                      {"name": "label_index", "data": [3]}]}  # fmt: skip
    with pytest.raises(EventError, match="out of range"):
        scored(json.dumps(out_of_range).encode(), "5")
    malformed = {**v2, "parameters": ["num_labels", 3]}
    assert scored(json.dumps(malformed).encode(), "5").class_count == 0


def test_put_arms_versions_follow_the_urls() -> None:
    old = {"stable": "http://s", "canary": "http://c"}
    versions = {"stable": "1", "canary": "2"}
    same = versions_update(versions, old, old, {})
    assert same == versions
    new = {"stable": "http://s", "canary": "http://c2"}
    assert versions_update(versions, old, new, {"canary_version": "3"}) == {
        "stable": "1",
        "canary": "3",
    }
    assert versions_update(versions, old, new, {}) == {"stable": "1"}  # not the old canary's
    assert versions_update(versions, old, {"stable": "http://s"}, {}) == {"stable": "1"}
    for bad in ("", "  ", 3):
        with pytest.raises(ValueError):
            versions_update(versions, old, old, {"stable_version": bad})


def test_the_spec_setting_defaults_to_the_label_view_and_reaches_the_predictor() -> None:
    from modeldeploy.operator.api.status import VersionRef
    from modeldeploy.operator.platforms.base import Target
    from modeldeploy.operator.platforms.kserve_manifests import predictor

    spec = {"model": {"name": "m", "registryUri": "http://mlflow:5000"}}
    assert parse_spec(spec).serving.response_detail == "label"
    with pytest.raises(ValueError):
        parse_spec({**spec, "serving": {"responseDetail": "scores"}})
    for detail in ("label", "full"):
        parsed = parse_spec({**spec, "serving": {"responseDetail": detail}})
        target = Target("m", "ml", parsed, uid="u", registry_uri="http://mlflow:5000")
        container = predictor(target, VersionRef("3", "dd", "s3://b/3"), "canary")["containers"][0]
        assert cargs.parse_predictor_args(container["args"]).response_detail == detail
        assert "--response-detail" in container["args"]  # written even at its default


def test_the_predictor_option_round_trips_and_refuses_other_views() -> None:
    for detail in cargs.RESPONSE_DETAILS:
        options = cargs.PredictorOptions(model_dir=None, response_detail=detail)
        assert cargs.parse_predictor_args(cargs.predictor_args(options)) == options
    assert cargs.PredictorOptions().response_detail == cargs.DEFAULT_RESPONSE_DETAIL == "label"
    with pytest.raises(argparse_error()):
        cargs.parse_predictor_args(["--response-detail", "scores"])


def argparse_error() -> type[BaseException]:
    import argparse

    return argparse.ArgumentError
