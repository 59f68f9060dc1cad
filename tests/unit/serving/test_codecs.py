"""Request parsing and output shaping rules (pure; no server)."""

from __future__ import annotations

import numpy as np
import pytest

from modeldeploy.serving import codecs
from modeldeploy.serving.codecs import TruncationPolicy
from modeldeploy.serving.errors import (
    EmptyText,
    InvalidUtf8,
    MalformedRequest,
    NanOutput,
    TextTooLong,
    TooManyInstances,
    WrongType,
)

POLICY = TruncationPolicy(max_length=8, mode="truncate", max_chars=20)


@pytest.mark.parametrize(
    ("items", "error"),
    [
        ([], EmptyText),
        ([""], EmptyText),
        (["  \n"], EmptyText),
        ([3], WrongType),
        ([None], WrongType),
        ([["nested"]], WrongType),
        (["a", "b", "c"], TooManyInstances),
        (["x" * 21], TextTooLong),
        ([b"\xff\xfe"], InvalidUtf8),
    ],
    ids=["none", "empty", "whitespace", "int", "null", "list", "too_many", "too_long", "bad_utf8"],
)
def test_validate_texts_rejects_each_bad_input_with_its_type(items, error):
    with pytest.raises(error):
        codecs.validate_texts(items, max_instances=2, policy=POLICY)


def test_validate_texts_decodes_utf8_bytes():
    assert codecs.validate_texts(["café".encode()], 2, POLICY) == ["café"]


@pytest.mark.parametrize(
    ("body", "error"),
    [
        ([1, 2], MalformedRequest),
        ({"texts": []}, MalformedRequest),
        ({"instances": "text"}, WrongType),
        (b"not json", MalformedRequest),
        (b'{"instances": ["\xff"]}', InvalidUtf8),
    ],
)
def test_parse_v1_rejects_malformed_bodies(body, error):
    with pytest.raises(error):
        codecs.parse_v1(body, {}, 4, POLICY)


def test_parse_v1_accepts_text_objects_and_raw_json_bytes():
    parsed = codecs.parse_v1(b'{"instances": [{"text": "hi"}, "yo"]}', {}, 4, POLICY)
    assert parsed.texts == ["hi", "yo"] and parsed.protocol == "v1"


@pytest.mark.parametrize(
    ("supplied", "headers", "expected"),
    [
        ("body-id", {"x-request-id": "header-id"}, "body-id"),
        (None, {"x-request-id": "header-id"}, "header-id"),
        ("", {"x-request-id": " padded "}, "padded"),
    ],
)
def test_request_id_prefers_the_clients_id(supplied, headers, expected):
    assert codecs.request_id_from(supplied, headers) == expected


def test_request_id_is_fresh_when_none_supplied():
    a, b = codecs.request_id_from(None, {}), codecs.request_id_from(None, None)
    assert a != b and len(a) == 36


def test_request_id_too_long_is_refused():
    with pytest.raises(MalformedRequest):
        codecs.request_id_from("x" * 200, {})


def test_item_ids_are_the_request_id_for_one_item_and_indexed_for_several():
    assert codecs.item_ids("r", 1) == ["r"]
    assert codecs.item_ids("r", 3) == ["r/0", "r/1", "r/2"]


def test_pad_batch_pads_to_the_longest_item_not_max_length():
    ids, mask = codecs.pad_batch([[1, 2, 3], [4]], pad_id=0)
    assert ids.tolist() == [[1, 2, 3], [4, 0, 0]]
    assert mask.tolist() == [[1, 1, 1], [1, 0, 0]]
    assert ids.dtype == np.int64


def test_truncation_keeps_the_final_special_token():
    assert codecs._truncate_keeping_last([101, 1, 2, 3, 4, 102], 4) == [101, 1, 2, 102]


def test_softmax_rows_sum_to_one_and_nan_raises():
    probs = codecs.softmax(np.array([[0.0, 0.0], [10.0, -10.0]]))
    np.testing.assert_allclose(probs.sum(1), 1.0)
    assert probs[0, 0] == pytest.approx(0.5)
    with pytest.raises(NanOutput):
        codecs.softmax(np.array([[np.nan, 1.0]]))
    with pytest.raises(NanOutput):
        codecs.softmax(np.array([[np.inf, 1.0]]))


def test_score_rows_gives_each_row_its_own_softmax_and_marks_non_finite_rows():
    logits = np.array([[0.0, 0.0], [10.0, -10.0], [np.nan, 1.0], [-1.0, 2.0], [np.inf, 0.0]])
    rows = codecs.score_rows(logits)
    assert rows[2] is None and rows[4] is None  # only the rows with a bad logit
    for i in (0, 1, 3):
        alone = codecs.softmax(logits[i : i + 1])[0]
        assert rows[i].probabilities == [float(p) for p in alone]  # bit for bit
        assert rows[i].label_index == int(np.argmax(alone))
        assert all(type(p) is float for p in rows[i].probabilities)  # JSON-ready
    assert rows[0].label_index == 0  # a tie goes to the first class, as argmax does
    assert [r.label_index for r in codecs.score_rows(np.array([[3.0, 1.0, 5.0]], np.float32))] == [
        2
    ]


def test_require_finite_refuses_a_request_with_any_non_finite_row():
    good = codecs.Scored([0.5, 0.5], 0)
    assert codecs.require_finite([good, good]) == [good, good]
    with pytest.raises(NanOutput, match="NaN or infinite logits"):
        codecs.require_finite([good, None])


def test_v1_response_carries_label_probabilities_version_id_and_policy():
    encoded = [codecs.Encoded([1, 2], truncated=True)]
    preds = codecs.make_predictions([codecs.Scored([0.2, 0.8], 1)], encoded, ["neg", "pos"], ["r"])
    request = codecs.ParsedRequest(["t"], "r", "v1")
    body = codecs.v1_response(preds, ["neg", "pos"], request, "m", "3", POLICY)
    (item,) = body["predictions"]
    assert item["label"] == "pos" and item["label_index"] == 1
    assert item["probabilities"] == pytest.approx({"neg": 0.2, "pos": 0.8})
    assert item["truncated"] is True and item["tokens"] == 2
    assert body["request_id"] == "r" and body["model_version"] == "3"
    assert body["truncation"]["mode"] == "truncate"


def test_v2_outputs_have_the_documented_types():
    preds = codecs.make_predictions(
        [codecs.Scored([0.9, 0.1], 0)], [codecs.Encoded([1], False)], ["neg", "pos"], ["r"]
    )
    arrays = codecs.v2_output_arrays(preds)
    assert arrays["label"].tolist() == [b"neg"]
    assert arrays["label_index"].dtype == np.int64
    assert arrays["probabilities"].shape == (1, 2) and arrays["probabilities"].dtype == np.float32
