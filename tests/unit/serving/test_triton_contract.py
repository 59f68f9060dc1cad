"""The Triton model.py holds copies of serving contracts it cannot import; each equals its source.

Also the manifest check model.py runs before loading, and the ensemble's version pinning,
as pure functions (no tritonserver here; tests/integration/triton runs the real one).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from prometheus_client import CollectorRegistry

from modeldeploy.serving import codecs, loading, metrics
from modeldeploy.serving.errors import BadInput as PredictorBadInput
from modeldeploy.serving.triton import backend_model
from modeldeploy.serving.triton.backend_model import (
    BadInput,
    UnitIntegrityError,
    validate_texts,
    verify_unit,
)
from modeldeploy.serving.triton.config import native_onnxruntime_configs, python_model_config
from modeldeploy.serving.triton.export import write_manifest

REFUSED = [
    b"\xff\xfe not utf-8",
    b"",
    b" \t\n ",
    "\x00\u200b\ufeff\u200d".encode(),
    b"x" * (codecs.TruncationPolicy().max_chars + 1),
]


@pytest.mark.parametrize(
    "raw", REFUSED, ids=["invalid_utf8", "empty", "whitespace", "invisible", "too_long"]
)
def test_triton_refuses_what_the_predictor_refuses_with_the_same_message(raw: bytes) -> None:
    policy = codecs.TruncationPolicy()
    with pytest.raises(PredictorBadInput) as predictor:
        codecs.validate_texts([raw], max_instances=8, policy=policy)
    with pytest.raises(BadInput) as triton:
        validate_texts(np.array([[raw]], dtype=np.object_), policy.max_chars)
    assert predictor.value.http_status == 400
    assert str(triton.value) == predictor.value.reason


def test_the_visible_character_rule_is_the_same_rule() -> None:
    assert backend_model._VISIBLE.pattern == codecs._VISIBLE.pattern


def test_accepted_texts_are_the_same_texts() -> None:
    raw = ["a fine film", "x" * codecs.TruncationPolicy().max_chars, "naïve café"]
    expected = codecs.validate_texts(raw, max_instances=8, policy=codecs.TruncationPolicy())
    as_bytes = np.array([[t.encode()] for t in raw], dtype=np.object_)
    assert validate_texts(as_bytes, backend_model.DEFAULT_MAX_CHARS) == expected


def test_default_character_limit_is_the_predictors() -> None:
    assert codecs.TruncationPolicy().max_chars == backend_model.DEFAULT_MAX_CHARS
    text = python_model_config("m", 2)
    assert (
        f'key: "max_chars" value: {{ string_value: "{codecs.TruncationPolicy().max_chars}" }}'
        in text
    )


@pytest.mark.parametrize(
    ("metrics_json", "tokenizer_config", "config"),
    [
        ({"max_length": 64}, {"model_max_length": 128}, {"max_position_embeddings": 512}),
        ({}, {"model_max_length": 128}, {"max_position_embeddings": 512}),
        ({"max_length": 64}, {"model_max_length": int(1e30)}, {"max_position_embeddings": 512}),
        ({"max_length": 1024}, {"model_max_length": 256}, {"max_position_embeddings": 512}),
        ({}, {"model_max_length": 514}, {"max_position_embeddings": 514, "model_type": "roberta"}),
        ({}, {}, {"max_position_embeddings": 2048}),
        ({"max_length": "64"}, {}, {"max_position_embeddings": 128}),
    ],
)
def test_max_length_is_resolved_like_the_python_predictor(
    tmp_path: Path, metrics_json: dict, tokenizer_config: dict, config: dict
) -> None:
    (tmp_path / "metrics.json").write_text(json.dumps(metrics_json))
    (tmp_path / "tokenizer_config.json").write_text(json.dumps(tokenizer_config))
    (tmp_path / "config.json").write_text(json.dumps(config))
    assert backend_model.read_max_length(tmp_path) == loading._max_length(tmp_path, config)


def test_metric_names_labels_and_buckets_are_the_serving_contract() -> None:
    registry = CollectorRegistry()
    arm = metrics.ArmMetrics("d", "1", "stable", ["negative", "positive"], registry)
    arm.observe_request("v2", "ok", 0.01)
    samples = {s.name: s.labels for f in registry.collect() for s in f.samples}
    for name in (
        backend_model.METRIC_REQUESTS,
        backend_model.METRIC_NAN_OUTPUTS,
        backend_model.METRIC_PREDICTIONS,
        backend_model.METRIC_DURATION + "_bucket",
    ):
        assert name in samples, name
    assert set(samples[backend_model.METRIC_REQUESTS]) == {*metrics.COMMON_LABELS, "outcome"}
    assert backend_model.OUTCOMES == metrics.OUTCOMES
    assert backend_model.TRITON_PROTOCOL in metrics.PROTOCOLS
    assert backend_model.latency_buckets() == metrics.latency_buckets()
    assert set(backend_model.metric_labels("7", "d")) == set(metrics.COMMON_LABELS)


def _unit(repository: Path, model: str = "m", version: int = 1) -> None:
    (repository / model / str(version)).mkdir(parents=True)
    (repository / model / "config.pbtxt").write_text(python_model_config(model, 2))
    (repository / model / str(version) / "model.onnx").write_bytes(b"weights of version 1")
    (repository / model / str(version) / "tokenizer.json").write_text("{}")
    write_manifest(repository, model, version, [model])


def test_an_exported_unit_verifies(tmp_path: Path) -> None:
    _unit(tmp_path)
    (tmp_path / "m" / "1" / "__pycache__").mkdir()  # what the Python backend writes
    (tmp_path / "m" / "1" / "__pycache__" / "model.cpython-311.pyc").write_bytes(b"x")
    data = verify_unit(tmp_path, "m", "m", "1")
    assert set(data["files"]) == {"m/config.pbtxt", "m/1/model.onnx", "m/1/tokenizer.json"}


@pytest.mark.parametrize(
    ("tamper", "message"),
    [
        (lambda r: (r / "m/1/model.onnx").write_bytes(b"weights of version 2"), "SHA-256 differs"),
        (lambda r: (r / "m/1/tokenizer.json").unlink(), "missing"),
        (lambda r: (r / "m/1/pytorch_model.bin").write_bytes(b"pickle"), "unexpected file"),
        (lambda r: (r / "m/config.pbtxt").write_text("changed"), "m/config.pbtxt"),
        (lambda r: (r / "m/modeldeploy-manifest-1.json").unlink(), "is missing"),
        (lambda r: (r / "m/modeldeploy-manifest-1.json").write_text("{"), "unreadable"),
    ],
    ids=["altered", "deleted", "smuggled", "config", "no_manifest", "bad_manifest"],
)
def test_a_tampered_unit_is_refused_naming_the_problem(
    tmp_path: Path, tamper: object, message: str
) -> None:
    _unit(tmp_path)
    tamper(tmp_path)  # type: ignore[operator]
    with pytest.raises(UnitIntegrityError, match=message):
        verify_unit(tmp_path, "m", "m", "1")


def test_a_unit_copied_under_another_version_number_is_refused(tmp_path: Path) -> None:
    _unit(tmp_path)
    shutil.copytree(tmp_path / "m" / "1", tmp_path / "m" / "2")
    shutil.copy(
        tmp_path / "m" / "modeldeploy-manifest-1.json",
        tmp_path / "m" / "modeldeploy-manifest-2.json",
    )
    with pytest.raises(UnitIntegrityError, match="exported as another version"):
        verify_unit(tmp_path, "m", "m", "2")


def test_manifest_is_the_registry_format(tmp_path: Path) -> None:
    from modeldeploy.registry import manifest as manifests

    _unit(tmp_path)
    text = (tmp_path / "m" / "modeldeploy-manifest-1.json").read_text()
    parsed = manifests.from_json(text)
    assert parsed["m/1/model.onnx"].sha256 == manifests.sha256_file(tmp_path / "m/1/model.onnx")


def test_ensemble_pins_its_version_in_policy_and_every_step() -> None:
    configs = native_onnxruntime_configs("m", 2, ["input_ids", "attention_mask"], version=3)
    ensemble = configs["m"]
    assert "model_version: -1" not in ensemble
    assert ensemble.count("model_version: 3") == 3
    assert "version_policy: { specific { versions: [ 3 ] } }" in ensemble
    for part in ("m_tokenize", "m_postprocess"):
        assert 'key: "export_name" value: { string_value: "m" }' in configs[part]


def test_tokenization_failure_rule_is_the_predictors() -> None:
    from modeldeploy.serving.contract import names

    assert backend_model.TOKENIZATION_FAILURE_REASONS == names.TOKENIZATION_FAILURE_REASONS
    assert backend_model.UNKNOWN_TOKEN_SHARE_LIMIT == names.UNKNOWN_TOKEN_SHARE_LIMIT
    assert backend_model.METRIC_TOKENIZATION_FAILURES == names.TOKENIZATION_FAILURES
    for content in range(6):
        for unknown in range(content + 1):
            for too_long in (False, True):
                args = (content, unknown, too_long)
                assert backend_model.tokenization_issues(*args) == codecs.tokenization_issues(*args)


def test_triton_encoder_finds_the_failures_the_predictor_finds(tiny_checkpoint: Path) -> None:
    texts = ["good film", "\u0301", "日本語 テキスト ☃☃", " ".join(["word"] * 80)]
    triton = backend_model.TextEncoder(tiny_checkpoint).encode(texts).issues
    policy = codecs.TruncationPolicy(max_length=backend_model.read_max_length(tiny_checkpoint))
    python = codecs.TextEncoder.from_directory(tiny_checkpoint, policy, token_types=True)
    assert list(triton) == [e.issues for e in python.encode(texts)]
    assert triton == ((), ("empty",), ("unknown_tokens",), ("over_limit",))


class _FakeMetricFamily:
    """Just enough of ``pb_utils.MetricFamily`` to record what ArmMetrics does."""

    COUNTER, HISTOGRAM = "counter", "histogram"

    def __init__(self, name: str, description: str, kind: str) -> None:
        self.name, self.kind, self.metrics = name, kind, []

    def Metric(self, labels: dict[str, str], buckets: list[float] | None = None):
        family = self

        class _Metric:
            value = 0.0

            def increment(self, by: float) -> None:
                assert family.kind == "counter" and by >= 0
                self.value += by

            def observe(self, value: float) -> None:
                self.value += value

        metric = _Metric()
        self.metrics.append((labels, metric))
        return metric


def test_triton_arm_charges_its_cpu_time_and_counts_failures_by_reason() -> None:
    import time
    from types import SimpleNamespace

    from modeldeploy.serving.contract import names

    families: dict[str, _FakeMetricFamily] = {}

    def family(name: str, description: str, kind: str) -> _FakeMetricFamily:
        families[name] = _FakeMetricFamily(name, description, kind)
        return families[name]

    family.COUNTER, family.HISTOGRAM = "counter", "histogram"  # type: ignore[attr-defined]
    base = {"deployment": "d", "model_version": "3", "role": "canary"}
    arm = backend_model.ArmMetrics(SimpleNamespace(MetricFamily=family), base, ["a", "b"])
    assert backend_model.METRIC_CPU_SECONDS == names.CPU_SECONDS
    ((labels, cpu),) = families[names.CPU_SECONDS].metrics
    assert labels == base
    loaded = cpu.value
    assert 0 < loaded <= time.process_time()
    deadline = time.process_time() + 0.05
    while time.process_time() < deadline:
        pass
    arm.charge_cpu()
    assert cpu.value - loaded >= 0.05
    arm.tokenization_failure("unknown_tokens")
    counted = {
        m_labels["reason"]: m.value for m_labels, m in families[names.TOKENIZATION_FAILURES].metrics
    }
    assert counted == {"empty": 0, "over_limit": 0, "unknown_tokens": 1, "error": 0}


def test_the_environment_names_are_the_contracts() -> None:
    from modeldeploy.serving.contract import triton as contract

    assert backend_model.ENV_DEPLOYMENT == contract.ENV_DEPLOYMENT
    assert backend_model.ENV_ROLE == contract.ENV_ROLE
    assert backend_model.ENV_RESPONSE_DETAIL == contract.ENV_RESPONSE_DETAIL


def test_triton_torch_runtime_asks_for_what_the_predictor_asks_of_torch() -> None:
    """Huge pages for torch's large blocks in the Triton stub as in the predictor (the
    comparison of the two servers is of servers, not of memory layouts)."""
    from modeldeploy.serving.startup import ENVIRONMENT

    assert backend_model.TORCH_ENVIRONMENT == {"THP_MEM_ALLOC_ENABLE": "1"}
    assert backend_model.TORCH_ENVIRONMENT.items() <= ENVIRONMENT.items()


@pytest.mark.parametrize(
    ("value", "view"), [(None, "label"), ("", "label"), ("label", "label"), ("Full", "label"),
                        ("full", "full")]
)  # fmt: skip
def test_only_full_asks_for_probabilities(
    monkeypatch: pytest.MonkeyPatch, value: str | None, view: str
) -> None:
    if value is None:
        monkeypatch.delenv(backend_model.ENV_RESPONSE_DETAIL, raising=False)
    else:
        monkeypatch.setenv(backend_model.ENV_RESPONSE_DETAIL, value)
    assert backend_model.response_detail() == view


def test_label_index_and_class_count_per_row() -> None:
    probabilities = np.array([[0.2, 0.7, 0.1], [0.9, 0.05, 0.05]], dtype=np.float32)
    indexes, counts = backend_model.label_indexes(probabilities)
    assert indexes.dtype == counts.dtype == np.int64
    assert indexes.tolist() == [[1], [0]] and counts.tolist() == [[3], [3]]


def test_every_config_declares_the_label_view_outputs() -> None:
    configs = [python_model_config("m", 2)]
    configs += native_onnxruntime_configs("m", 2, ["input_ids"], version=1).values()
    for text in (configs[0], configs[1], configs[-1]):  # python, ensemble, postprocess
        for name in ("LABEL_INDEX", "NUM_LABELS"):
            assert f'name: "{name}" data_type: TYPE_INT64 dims: [ 1 ]' in text


def test_the_registry_version_comes_from_the_unit_else_from_triton(tmp_path: Path) -> None:
    assert backend_model.registry_version(tmp_path, "5") == "5"
    (tmp_path / backend_model.VERSION_FILE).write_text('{"registry_version": "12"}')
    assert backend_model.registry_version(tmp_path, "1") == "12"
    (tmp_path / backend_model.VERSION_FILE).write_text('{"registry_version": "x"}')
    with pytest.raises(UnitIntegrityError, match="not a positive integer"):
        backend_model.registry_version(tmp_path, "1")


def test_the_registry_version_file_is_bound_by_the_manifest(tmp_path: Path) -> None:
    _unit(tmp_path)
    (tmp_path / "m" / "1" / backend_model.VERSION_FILE).write_text('{"registry_version": "9"}')
    with pytest.raises(UnitIntegrityError, match="unexpected file"):  # added after export
        verify_unit(tmp_path, "m", "m", "1")
    write_manifest(tmp_path, "m", 1, ["m"])
    verify_unit(tmp_path, "m", "m", "1")
    (tmp_path / "m" / "1" / backend_model.VERSION_FILE).write_text('{"registry_version": "8"}')
    with pytest.raises(UnitIntegrityError, match="SHA-256 differs"):  # relabelled
        verify_unit(tmp_path, "m", "m", "1")
