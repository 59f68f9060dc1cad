"""Triton Python-backend model for a BERT-family text classifier.

This file is copied verbatim into an exported repository as ``<name>/<version>/model.py``.
It must not import ``modeldeploy``: a Triton image on a GPU cluster has only the packages
listed in ``docs/serving-router-triton.md`` (numpy, tokenizers, onnxruntime, and torch +
transformers for the torch runtime). Everything it needs sits in its own version
directory, so tokenizer and weights always come from the same exported unit.

One file serves three stages, chosen by the ``stage`` parameter in ``config.pbtxt``:

- ``full`` (the CPU repository): text in, tokenize, run the model, label and probabilities out;
- ``tokenize`` and ``postprocess``: the two Python ends of the native-backend ensemble, where
  Triton's own onnxruntime backend runs the network in between.

The pure parts (``TextEncoder``, ``softmax``, ``decode_texts``, ``to_outputs``) are plain
Python so the unit tests exercise them without a Triton stub.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

# Longest sequence a BERT-family position table allows; RoBERTa reserves two slots.
_HARD_MAX_LENGTH = 512


@dataclass(frozen=True)
class Encoded:
    """A padded batch: one int64 array per model input, all (batch, sequence)."""

    arrays: dict[str, np.ndarray]


class TextEncoder:
    """Tokenize like ``AutoTokenizer(..., padding=True, truncation=True)`` does.

    The packaged ``tokenizer.json`` may carry padding or truncation of its own; both are
    replaced here so a batch is padded to its longest item (or to ``max_length`` when
    ``pad_to_max_length`` is set, which the native ensemble needs so Triton can batch
    requests of different lengths) and truncated to the checkpoint's max length.
    """

    def __init__(self, directory: Path, *, pad_to_max_length: bool = False) -> None:
        from tokenizers import Tokenizer

        self.max_length = read_max_length(directory)
        settings = _read_json(directory / "tokenizer_config.json")
        tokenizer = Tokenizer.from_file(str(directory / "tokenizer.json"))
        tokenizer.no_padding()
        tokenizer.no_truncation()
        tokenizer.enable_truncation(max_length=self.max_length)
        pad_token = str(settings.get("pad_token") or "[PAD]")
        pad_id = tokenizer.token_to_id(pad_token)
        tokenizer.enable_padding(
            pad_id=0 if pad_id is None else pad_id,
            pad_token=pad_token,
            length=self.max_length if pad_to_max_length else None,
        )
        self._tokenizer = tokenizer

    def encode(self, texts: Sequence[str]) -> Encoded:
        encodings = self._tokenizer.encode_batch(list(texts))
        return Encoded(
            arrays={
                "input_ids": np.array([e.ids for e in encodings], dtype=np.int64),
                "attention_mask": np.array([e.attention_mask for e in encodings], dtype=np.int64),
                "token_type_ids": np.array([e.type_ids for e in encodings], dtype=np.int64),
            }
        )


def read_max_length(directory: Path) -> int:
    """The truncation length: the tokenizer's, else metrics.json's, capped by positions."""
    settings = _read_json(directory / "tokenizer_config.json")
    metrics = _read_json(directory / "metrics.json")
    config = _read_json(directory / "config.json")
    limit = int(settings.get("model_max_length") or metrics.get("max_length") or _HARD_MAX_LENGTH)
    positions = int(config.get("max_position_embeddings") or _HARD_MAX_LENGTH)
    if config.get("model_type") == "roberta":
        positions -= 2  # RoBERTa position ids start after the padding index
    return max(1, min(limit, positions, _HARD_MAX_LENGTH))


def read_labels(directory: Path) -> list[str]:
    """Class names in index order, from labels.json (or config.json's id2label)."""
    labels = _read_json(directory / "labels.json") or _read_json(directory / "config.json").get(
        "id2label", {}
    )
    if not labels:
        raise ValueError(f"{directory} has no labels.json and no id2label")
    return [str(labels[str(i)]) for i in range(len(labels))]


def softmax(logits: np.ndarray) -> np.ndarray:
    """Row-wise softmax in float32, stable for large logits."""
    shifted = logits.astype(np.float32) - logits.max(axis=1, keepdims=True)
    exp = np.exp(shifted)
    return exp / exp.sum(axis=1, keepdims=True)


def decode_texts(raw: np.ndarray) -> list[str]:
    """BYTES tensor (batch, 1) or (batch,) -> list of str; invalid UTF-8 raises ValueError."""
    texts = []
    for item in raw.reshape(-1):
        if isinstance(item, bytes | bytearray):
            texts.append(bytes(item).decode("utf-8"))  # strict: a bad byte is the caller's error
        else:
            texts.append(str(item))
    return texts


def to_outputs(probabilities: np.ndarray, labels: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """(LABEL as object array (n, 1) of bytes, PROBABILITIES float32 (n, k))."""
    names = np.array(
        [[labels[int(i)].encode("utf-8")] for i in probabilities.argmax(axis=1)], dtype=np.object_
    )
    return names, probabilities.astype(np.float32)


class OnnxRunner:
    """Run model.onnx with onnxruntime, feeding only the inputs the graph declares."""

    def __init__(self, path: Path, threads: int = 0) -> None:
        import onnxruntime as ort

        options = ort.SessionOptions()
        if threads > 0:
            options.intra_op_num_threads = threads
            options.inter_op_num_threads = 1
        self._session = ort.InferenceSession(
            str(path), sess_options=options, providers=["CPUExecutionProvider"]
        )
        self.input_names = [i.name for i in self._session.get_inputs()]

    def logits(self, encoded: Encoded) -> np.ndarray:
        feeds = {name: encoded.arrays[name] for name in self.input_names}
        return np.asarray(self._session.run(None, feeds)[0])


class TorchRunner:
    """Run the safetensors weights with transformers, in inference mode."""

    def __init__(self, directory: Path, threads: int = 0) -> None:
        import torch
        from transformers import AutoModelForSequenceClassification

        if threads > 0:
            torch.set_num_threads(threads)
        self._torch = torch
        self._model = AutoModelForSequenceClassification.from_pretrained(directory).eval()
        names = _read_json(directory / "tokenizer_config.json").get("model_input_names")
        self.input_names = list(names or ["input_ids", "attention_mask"])

    def logits(self, encoded: Encoded) -> np.ndarray:
        torch = self._torch
        with torch.inference_mode():
            feeds = {n: torch.from_numpy(encoded.arrays[n]) for n in self.input_names}
            return self._model(**feeds).logits.float().numpy()


class Classifier:
    """Texts in, (labels, probabilities) out; the whole ``full`` stage without Triton."""

    def __init__(self, directory: Path, runtime: str = "onnx", threads: int = 0) -> None:
        self.labels = read_labels(directory)
        self.encoder = TextEncoder(directory)
        if runtime == "onnx":
            self.runner: OnnxRunner | TorchRunner = OnnxRunner(directory / "model.onnx", threads)
        elif runtime == "torch":
            self.runner = TorchRunner(directory, threads)
        else:
            raise ValueError(f"unknown runtime {runtime!r}: use 'onnx' or 'torch'")

    def classify(self, texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        logits = self.runner.logits(self.encoder.encode(texts))
        if not np.all(np.isfinite(logits)):
            raise FloatingPointError("the model produced NaN or infinite logits")
        return to_outputs(softmax(logits), self.labels)


def _read_json(path: Path) -> dict[str, Any]:
    if not path.is_file():
        return {}
    return dict(json.loads(path.read_text()))


def _parameters(model_config: dict[str, Any]) -> dict[str, str]:
    raw = model_config.get("parameters") or {}
    return {key: str(value.get("string_value", "")) for key, value in raw.items()}


class TritonPythonModel:
    """The class Triton's Python backend instantiates; a thin adapter over the pure parts.

    Requests that Triton's dynamic batcher hands over together are concatenated into one
    forward pass and split again, so batching happens across clients, not per request.
    """

    def initialize(self, args: dict[str, str]) -> None:
        model_config = json.loads(args["model_config"])
        params = _parameters(model_config)
        directory = Path(args["model_repository"]) / args["model_version"]
        self.stage = params.get("stage", "full")
        threads = int(params.get("threads") or 0)
        if self.stage == "full":
            self.classifier = Classifier(directory, params.get("runtime", "onnx"), threads)
        elif self.stage == "tokenize":
            self.encoder = TextEncoder(directory, pad_to_max_length=True)
            self.input_names = list(
                params.get("input_names", "input_ids,attention_mask").split(",")
            )
        elif self.stage == "postprocess":
            self.labels = read_labels(directory)
        else:
            raise ValueError(f"unknown stage {self.stage!r}")

    def execute(self, requests: list[Any]) -> list[Any]:
        import triton_python_backend_utils as pb_utils

        if self.stage == "postprocess":
            return [self._postprocess(pb_utils, request) for request in requests]
        responses: list[Any] = [None] * len(requests)
        texts: list[str] = []
        spans: list[tuple[int, int, int]] = []
        for index, request in enumerate(requests):
            raw = pb_utils.get_input_tensor_by_name(request, "TEXT").as_numpy()
            try:
                batch = decode_texts(raw)
            except UnicodeDecodeError as exc:
                responses[index] = _error(pb_utils, f"TEXT is not valid UTF-8: {exc}")
                continue
            spans.append((index, len(texts), len(texts) + len(batch)))
            texts.extend(batch)
        if not texts:
            return responses
        try:
            if self.stage == "tokenize":
                arrays = self.encoder.encode(texts).arrays
                for index, start, stop in spans:
                    tensors = [
                        pb_utils.Tensor(name.upper(), arrays[name][start:stop])
                        for name in self.input_names
                    ]
                    responses[index] = pb_utils.InferenceResponse(output_tensors=tensors)
                return responses
            names, probabilities = self.classifier.classify(texts)
        except Exception as exc:  # one bad batch must answer every request, not hang them
            for index, _, _ in spans:
                responses[index] = _error(pb_utils, f"{type(exc).__name__}: {exc}")
            return responses
        for index, start, stop in spans:
            responses[index] = pb_utils.InferenceResponse(
                output_tensors=[
                    pb_utils.Tensor("LABEL", names[start:stop]),
                    pb_utils.Tensor("PROBABILITIES", probabilities[start:stop]),
                ]
            )
        return responses

    def _postprocess(self, pb_utils: Any, request: Any) -> Any:
        logits = pb_utils.get_input_tensor_by_name(request, "LOGITS").as_numpy()
        if not np.all(np.isfinite(logits)):
            return _error(pb_utils, "the model produced NaN or infinite logits")
        names, probabilities = to_outputs(softmax(logits), self.labels)
        return pb_utils.InferenceResponse(
            output_tensors=[
                pb_utils.Tensor("LABEL", names),
                pb_utils.Tensor("PROBABILITIES", probabilities),
            ]
        )


def _error(pb_utils: Any, message: str) -> Any:
    return pb_utils.InferenceResponse(output_tensors=[], error=pb_utils.TritonError(message))
