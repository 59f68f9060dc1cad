"""The backend contract: token ids in, logits out. Nothing about HTTP or batching."""

from __future__ import annotations

from typing import Literal, Protocol

import numpy as np

Runtime = Literal["torch", "onnx", "onnx-int8"]
Precision = Literal["auto", "fp32", "bf16", "fp16"]
RUNTIMES: tuple[Runtime, ...] = ("torch", "onnx", "onnx-int8")


class Backend(Protocol):
    """Runs one padded batch. Called from the batcher's single worker thread only."""

    runtime: str

    def logits(self, input_ids: np.ndarray, attention_mask: np.ndarray) -> np.ndarray:
        """(batch, num_labels) float logits for int64 ids and mask of shape (batch, seq)."""
        ...


class ParityFailed(RuntimeError):
    """The candidate runtime lost more accuracy than allowed; the server must not start."""
