"""ONNX Runtime backend, with the export and the optional dynamic INT8 quantization.

Exported graphs are cached under ``$MODELDEPLOY_CACHE/onnx/<weights digest>/`` so a
restart loads the graph directly: that path needs neither torch nor transformers,
which is most of what makes a cold start fast.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np

ONNX_FILE = "model.onnx"
INT8_FILE = "model.int8.onnx"
INPUT_NAMES = ("input_ids", "attention_mask")


def cache_root() -> Path:
    """``$MODELDEPLOY_CACHE`` (default ~/.cache/modeldeploy), as the checkpoint factory uses."""
    root = os.environ.get("MODELDEPLOY_CACHE") or str(Path.home() / ".cache" / "modeldeploy")
    return Path(root)


def weights_digest(model_dir: Path) -> str:
    """SHA-256 over config and weights: the key of everything derived from them."""
    digest = hashlib.sha256()
    for name in ("config.json", "model.safetensors"):
        with open(model_dir / name, "rb") as handle:
            digest.update(name.encode())
            digest.update(hashlib.file_digest(handle, "sha256").digest())
    return digest.hexdigest()[:20]


def artifact_dir(model_dir: Path) -> Path:
    return cache_root() / "onnx" / weights_digest(model_dir)


def export(model_dir: Path, out_dir: Path) -> Path:
    """Export the classifier to ONNX with dynamic batch and sequence axes (atomic write)."""
    import torch
    from transformers import AutoModelForSequenceClassification

    target = out_dir / ONNX_FILE
    if target.exists():
        return target
    out_dir.mkdir(parents=True, exist_ok=True)
    model = AutoModelForSequenceClassification.from_pretrained(model_dir).eval()
    ids = torch.ones(2, 8, dtype=torch.long)
    mask = torch.ones(2, 8, dtype=torch.long)
    axes = {name: {0: "batch", 1: "sequence"} for name in INPUT_NAMES}
    with tempfile.TemporaryDirectory(dir=out_dir) as work:
        tmp = Path(work) / ONNX_FILE
        with torch.inference_mode():
            torch.onnx.export(
                model,
                (ids, mask),
                str(tmp),
                input_names=list(INPUT_NAMES),
                output_names=["logits"],
                dynamic_axes={**axes, "logits": {0: "batch"}},
                opset_version=17,
                dynamo=False,  # the dynamo exporter needs onnxscript, which is not installed
            )
        os.replace(tmp, target)
    return target


def quantize(source: Path) -> Path:
    """Dynamic INT8 quantization of the weights of MatMul/Gemm (activations stay float)."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    target = source.with_name(INT8_FILE)
    if target.exists():
        return target
    with tempfile.TemporaryDirectory(dir=source.parent) as work:
        tmp = Path(work) / INT8_FILE
        quantize_dynamic(str(source), str(tmp), weight_type=QuantType.QInt8)
        shutil.move(str(tmp), target)
    return target


def ensure_artifact(model_dir: Path, int8: bool) -> Path:
    """The cached graph for these weights, exporting (and quantizing) it on first use."""
    folder = artifact_dir(model_dir)
    target = folder / (INT8_FILE if int8 else ONNX_FILE)
    if target.exists():
        return target
    graph = export(model_dir, folder)
    return quantize(graph) if int8 else graph


class OnnxBackend:
    def __init__(self, graph: Path, threads: int, runtime: str = "onnx") -> None:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = max(1, threads)
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        self.session = ort.InferenceSession(str(graph), options, providers=["CPUExecutionProvider"])
        self.runtime = runtime
        self.graph = graph

    def logits(self, input_ids: np.ndarray, attention_mask: np.ndarray) -> np.ndarray:
        feed = {"input_ids": input_ids, "attention_mask": attention_mask}
        return np.asarray(self.session.run(["logits"], feed)[0], dtype=np.float32)
