"""The reference backend: the checkpoint as transformers loads it, in inference mode."""

from __future__ import annotations

import contextlib
from pathlib import Path

import numpy as np


def configure_torch_threads(threads: int) -> None:
    """Intra-op threads = the cores we own; one inter-op thread (batches run one at a time)."""
    import torch

    torch.set_num_threads(max(1, threads))
    # Raises when already set, or once inter-op work has started in this process.
    with contextlib.suppress(RuntimeError):
        torch.set_num_interop_threads(1)


class TorchBackend:
    runtime = "torch"

    def __init__(self, model_dir: Path, threads: int) -> None:
        import torch
        from transformers import AutoModelForSequenceClassification

        configure_torch_threads(threads)
        self._torch = torch
        self.model = AutoModelForSequenceClassification.from_pretrained(model_dir).eval()
        self.num_labels = int(self.model.config.num_labels)

    def logits(self, input_ids: np.ndarray, attention_mask: np.ndarray) -> np.ndarray:
        torch = self._torch
        with torch.inference_mode():
            out = self.model(
                input_ids=torch.from_numpy(input_ids),
                attention_mask=torch.from_numpy(attention_mask),
            ).logits
        return out.float().numpy()
