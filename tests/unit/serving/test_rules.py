"""Small rules: error -> status/outcome mapping, parity judgement, routes, options.

Latency buckets are the contract's: tests/unit/serving/test_contract.py.
"""

from __future__ import annotations

import argparse

import numpy as np
import pytest

from modeldeploy.serving import errors
from modeldeploy.serving.backends.parity import judge
from modeldeploy.serving.config import ConfigError, add_arguments, from_args
from modeldeploy.serving.middleware import check_body, protocol_of


@pytest.mark.parametrize(
    ("exc", "status"),
    [
        (errors.EmptyText("x"), 400),
        (errors.BodyTooLarge("x"), 413),
        (errors.NanOutput("x"), 500),
        (errors.Overloaded("x"), 503),
        (ValueError("x"), 500),
    ],
)
def test_each_error_type_maps_to_one_status(exc, status):
    assert errors.status_for(exc) == status


@pytest.mark.parametrize(
    ("status", "outcome"),
    [(200, "ok"), (404, "bad_input"), (413, "bad_input"), (500, "error"), (503, "error")],
)
def test_status_maps_to_outcome(status, outcome):
    assert errors.outcome_for_status(status) == outcome


def test_parity_fails_when_the_drop_exceeds_the_tolerance():
    truth = np.array([0, 1, 0, 1, 0, 1, 0, 1, 0, 1])
    reference = truth.copy()
    candidate = truth.copy()
    candidate[:2] = 1 - candidate[:2]  # two more mistakes: drop 0.2
    report = judge("onnx-int8", reference, candidate, truth, tolerance=0.1)
    assert report.drop == pytest.approx(0.2) and not report.passed
    assert "EXCEEDS" in report.message()
    assert judge("onnx", reference, candidate, truth, tolerance=0.25).passed


def test_parity_passes_when_the_candidate_is_better():
    truth = np.array([0, 1, 1, 0])
    assert judge("onnx", np.array([1, 1, 1, 0]), truth, truth, tolerance=0.0).passed


@pytest.mark.parametrize(
    ("path", "protocol"),
    [
        ("/v1/models/m:predict", "v1"),
        ("/v2/models/m/infer", "v2"),
        ("/v2/models/m/versions/3/infer", "v2"),
        ("/v1/feedback", None),
        ("/metrics", None),
    ],
)
def test_protocol_of_route(path, protocol):
    assert protocol_of(path) == protocol


@pytest.mark.parametrize(
    ("body", "error"),
    [(b"\xff", errors.InvalidUtf8), (b"{nope", errors.MalformedRequest)],
)
def test_body_must_be_utf8_json(body, error):
    with pytest.raises(error):
        check_body(body, {})


def test_binary_tensor_bytes_after_the_json_header_are_not_utf8_checked():
    check_body(b'{"inputs": []}\xff\xfe', {b"inference-header-content-length": b"14"})


def _args(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    return parser.parse_args(list(argv))


def test_config_needs_exactly_one_source():
    with pytest.raises(ConfigError):
        from_args(_args())
    with pytest.raises(ConfigError):
        from_args(_args("--model-dir", "x", "--registry-uri", "http://127.0.0.1:1"))
    with pytest.raises(ConfigError, match="--model and --version"):
        from_args(_args("--registry-uri", "http://127.0.0.1:1"))


def test_config_from_args_carries_the_batching_and_policy_options():
    config = from_args(
        _args(
            "--model-dir",
            "m",
            "--max-batch-size",
            "8",
            "--max-batch-delay-ms",
            "3",
            "--truncation",
            "reject",
            "--runtime",
            "onnx-int8",
            "--role",
            "canary",
        )
    )
    assert config.batching.max_batch_size == 8 and config.batching.max_delay_s == 0.003
    assert config.policy.mode == "reject" and config.runtime == "onnx-int8"
    assert config.role == "canary"


def test_packing_is_on_by_default_and_a_negative_row_width_is_refused():
    assert from_args(_args("--model-dir", "m")).pack_row_tokens == 64
    assert from_args(_args("--model-dir", "m", "--pack-row-tokens", "0")).pack_row_tokens == 0
    with pytest.raises(ConfigError, match="--pack-row-tokens must not be negative"):
        from_args(_args("--model-dir", "m", "--pack-row-tokens", "-1"))
