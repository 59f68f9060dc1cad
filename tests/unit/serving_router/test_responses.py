"""Reading request ids and predictions out of predictor bodies."""

from __future__ import annotations

import json

from modeldeploy.serving.router.pairing import ArmPrediction
from modeldeploy.serving.router.responses import json_part, predictions_in, request_id_in


def test_request_id_prefers_the_body_id_like_the_predictor() -> None:
    body = json.dumps({"id": "from-body", "inputs": []}).encode()
    assert request_id_in(body, {"x-request-id": "from-header"}) == "from-body"
    assert request_id_in(b'{"instances": ["x"]}', {"x-request-id": "h"}) == "h"
    assert request_id_in(b"not json", {}) is None


def test_binary_requests_are_read_up_to_the_json_header_length() -> None:
    header = json.dumps({"id": "bin"}).encode()
    body = header + b"\x00\x01\x02"
    assert request_id_in(body, {"inference-header-content-length": str(len(header))}) == "bin"
    assert json_part(body, {}) is None


def test_v1_answer_gives_one_prediction_per_item() -> None:
    answer = {
        "predictions": [
            {"id": "r/0", "label": "negative", "label_index": 0},
            {"id": "r/1", "label": "positive", "label_index": 1},
        ],
        "request_id": "r",
        "model_version": "3",
    }
    found, request_id = predictions_in(answer)
    assert request_id == "r"
    assert found == [ArmPrediction("3", "negative", 0), ArmPrediction("3", "positive", 1)]


def test_v2_answer_reads_label_and_index_outputs_and_version_parameter() -> None:
    answer = {
        "id": "r",
        "outputs": [
            {"name": "label", "datatype": "BYTES", "shape": [1], "data": ["positive"]},
            {"name": "label_index", "datatype": "INT64", "shape": [1], "data": [1]},
            {"name": "probabilities", "datatype": "FP32", "shape": [1, 2], "data": [0.1, 0.9]},
        ],
        "parameters": {"model_version": "4"},
    }
    assert predictions_in(answer) == ([ArmPrediction("4", "positive", 1)], "r")


def test_error_bodies_give_no_predictions() -> None:
    assert predictions_in({"error": "bad"}) == ([], None)
    assert predictions_in({"outputs": [{"name": "label", "data": ["x"]}]}) == ([], None)
