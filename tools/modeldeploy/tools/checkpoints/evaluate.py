"""Score a saved checkpoint directory the way a user would load it.

Accuracy in ``metrics.json`` comes from loading the written directory with
``AutoTokenizer`` and ``AutoModelForSequenceClassification``, not from the
in-memory training objects, so it certifies the artifact that is published.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from transformers import AutoModelForSequenceClassification, AutoTokenizer


@torch.inference_mode()
def predict_directory(
    path: Path, texts: Sequence[str], batch_size: int = 64, max_length: int | None = None
) -> np.ndarray:
    """Class probabilities (n, num_labels) for ``texts`` from a checkpoint directory."""
    tokenizer = AutoTokenizer.from_pretrained(path)
    model = AutoModelForSequenceClassification.from_pretrained(path).eval()
    limit = max_length or int(getattr(tokenizer, "model_max_length", 512) or 512)
    limit = min(limit, 512)
    order = np.argsort([len(t) for t in texts], kind="stable")
    probs = np.zeros((len(texts), model.config.num_labels), dtype=np.float32)
    for start in range(0, len(order), batch_size):
        idx = order[start : start + batch_size]
        batch = tokenizer(
            [texts[i] for i in idx],
            padding=True,
            truncation=True,
            max_length=limit,
            return_tensors="pt",
        )
        logits = model(**batch).logits
        probs[idx] = torch.softmax(logits.float(), dim=-1).numpy()
    return probs


def accuracy(probs: np.ndarray, labels: Sequence[int]) -> float:
    return float(np.mean(probs.argmax(axis=1) == np.asarray(labels)))
