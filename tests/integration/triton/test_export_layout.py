"""What the exporter writes, checked on disk and as config text (no tritonserver needed).

The native onnxruntime target cannot run here (the bundled Triton has only the Python
backend), so its ensemble is checked as text, and its ONNX graph is run in onnxruntime.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from modeldeploy.serving.triton import Batching, ExportError, export_repository
from modeldeploy.serving.triton.backend_model import Classifier, TextEncoder
from modeldeploy.serving.triton.config import native_onnxruntime_configs, python_model_config


def test_python_config_declares_text_io_dynamic_batching_and_all_versions() -> None:
    text = python_model_config("m", 2, Batching(max_batch_size=32, max_queue_delay_us=500))
    assert 'backend: "python"' in text
    assert "max_batch_size: 32" in text
    assert "max_queue_delay_microseconds: 500" in text
    assert '{ name: "TEXT" data_type: TYPE_STRING dims: [ 1 ] }' in text
    assert '{ name: "LABEL" data_type: TYPE_STRING dims: [ 1 ] }' in text
    assert '{ name: "PROBABILITIES" data_type: TYPE_FP32 dims: [ 2 ] }' in text
    assert "version_policy: { all { } }" in text
    assert 'key: "runtime" value: { string_value: "onnx" }' in text


def test_native_target_chains_tokenize_onnx_on_gpu_and_postprocess() -> None:
    configs = native_onnxruntime_configs(
        "m", 2, ["input_ids", "attention_mask"], Batching(), version=1, tensorrt=True
    )
    assert set(configs) == {"m", "m_tokenize", "m_onnx", "m_postprocess"}
    ensemble, network = configs["m"], configs["m_onnx"]
    assert 'platform: "ensemble"' in ensemble
    steps = [line.strip() for line in ensemble.splitlines() if "model_name" in line]
    assert steps == [
        'model_name: "m_tokenize"',
        'model_name: "m_onnx"',
        'model_name: "m_postprocess"',
    ]
    assert 'input_map { key: "attention_mask" value: "_attention_mask" }' in ensemble
    assert 'output_map { key: "PROBABILITIES" value: "PROBABILITIES" }' in ensemble
    assert 'platform: "onnxruntime_onnx"' in network
    assert "kind: KIND_GPU" in network
    assert 'name: "tensorrt"' in network
    assert '{ name: "input_ids" data_type: TYPE_INT64 dims: [ -1 ] }' in network
    assert "token_type_ids" not in network
    assert "dynamic_batching" in network
    assert 'string_value: "tokenize"' in configs["m_tokenize"]
    assert "kind: KIND_CPU" in configs["m_postprocess"]


@pytest.mark.parametrize(
    "kwargs",
    [{"max_batch_size": 0}, {"max_queue_delay_us": -1}, {"preferred_batch_sizes": (128,)}],
)
def test_batching_rejects_settings_triton_would_refuse(kwargs: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        Batching(**kwargs)  # type: ignore[arg-type]


@pytest.mark.slow
def test_native_export_writes_four_models_and_a_dynamic_onnx_graph(
    tmp_path: Path, tiny_checkpoint: Path
) -> None:
    import onnxruntime as ort

    result = export_repository(tiny_checkpoint, tmp_path, "m", 3, target="onnxruntime")
    assert sorted(p.name for p in result.model_dirs) == [
        "m", "m_onnx", "m_postprocess", "m_tokenize"
    ]  # fmt: skip
    assert (tmp_path / "m" / "3").is_dir() and not any((tmp_path / "m" / "3").iterdir())
    assert (tmp_path / "m_tokenize" / "3" / "tokenizer.json").is_file()
    session = ort.InferenceSession(str(tmp_path / "m_onnx" / "3" / "model.onnx"))
    assert [i.name for i in session.get_inputs()] == list(result.input_names)
    # Dynamic axes: batches of 3 x 64 (padded, as the tokenize stage sends them) and 1 x 5.
    encoder = TextEncoder(tmp_path / "m_tokenize" / "3", pad_to_max_length=True)
    batch = encoder.encode(["good", "bad film", "a long and tedious mess of a movie"]).arrays
    assert batch["input_ids"].shape == (3, encoder.max_length)
    for feeds in (batch, TextEncoder(tmp_path / "m_tokenize" / "3").encode(["fine"]).arrays):
        logits = session.run(None, {n: feeds[n] for n in result.input_names})[0]
        assert logits.shape == (feeds["input_ids"].shape[0], 2)
        assert np.isfinite(logits).all()


@pytest.mark.slow
def test_torch_runtime_export_classifies_like_onnx(tmp_path: Path, tiny_checkpoint: Path) -> None:
    export_repository(tiny_checkpoint, tmp_path, "onnx", 1)
    export_repository(tiny_checkpoint, tmp_path, "torch", 1, runtime="torch")
    assert (tmp_path / "torch" / "1" / "model.safetensors").is_file()
    texts = ["a gripping, beautiful film", "dull and far too long", "fine"]
    _, onnx_probs = Classifier(tmp_path / "onnx" / "1", "onnx").classify(texts)
    _, torch_probs = Classifier(tmp_path / "torch" / "1", "torch").classify(texts)
    assert np.abs(onnx_probs - torch_probs).max() < 1e-4


@pytest.mark.slow
def test_a_version_with_a_different_config_is_refused(
    tmp_path: Path, tiny_checkpoint: Path
) -> None:
    export_repository(tiny_checkpoint, tmp_path, "m", 1)
    with pytest.raises(ExportError, match="different config"):
        export_repository(tiny_checkpoint, tmp_path, "m", 2, runtime="torch")
    with pytest.raises(ExportError, match="exists"):
        export_repository(tiny_checkpoint, tmp_path, "m", 1)
    export_repository(tiny_checkpoint, tmp_path, "m", 1, replace=True)


@pytest.mark.slow
def test_native_ensemble_refuses_a_second_version_under_its_name(
    tmp_path: Path, tiny_checkpoint: Path
) -> None:
    export_repository(tiny_checkpoint, tmp_path, "m", 1, target="onnxruntime")
    assert (tmp_path / "m" / "modeldeploy-manifest-1.json").is_file()
    # Before pinning this was accepted, and ensemble version 1 ran version 2's network.
    with pytest.raises(ExportError, match="already serves version 1") as refused:
        export_repository(tiny_checkpoint, tmp_path, "m", 2, target="onnxruntime")
    assert "another name" in str(refused.value)
    assert not (tmp_path / "m_onnx" / "2").exists()
    ensemble = (tmp_path / "m" / "config.pbtxt").read_text()
    assert "model_version: -1" not in ensemble and "model_version: 1" in ensemble
    # Under its own name (its own InferenceService) the second version is fine.
    export_repository(tiny_checkpoint, tmp_path, "m_v2", 2, target="onnxruntime")
    assert "model_version: 2" in (tmp_path / "m_v2" / "config.pbtxt").read_text()


def test_a_directory_without_tokenizer_is_not_a_checkpoint(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text("{}")
    with pytest.raises(ExportError, match="missing"):
        export_repository(tmp_path, tmp_path / "repo", "m", 1)
