"""Export a Hugging Face sequence classifier to ONNX with dynamic batch and sequence axes.

Uses the TorchScript-based exporter (``dynamo=False``): the torch.export-based default
needs ``onnxscript``, which is not a dependency. The graph takes exactly the inputs the
checkpoint's tokenizer produces (BERT here: ``input_ids`` and ``attention_mask``;
DistilBERT never takes ``token_type_ids``), so the exported model sees what the KServe
predictor's model sees.
"""

from __future__ import annotations

import warnings
from pathlib import Path

ONNX_OPSET = 17


def tokenizer_input_names(directory: Path) -> list[str]:
    """The model inputs the checkpoint's tokenizer emits, in a stable order."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(directory)
    names = list(tokenizer.model_input_names)
    order = ["input_ids", "attention_mask", "token_type_ids"]
    return [n for n in order if n in names]


def export_onnx(directory: Path, target: Path) -> list[str]:
    """Write ``target`` (model.onnx) from the checkpoint in ``directory``; return its inputs.

    The trace uses a batch with padding so the attention-mask path is part of the graph.
    """
    import torch
    from transformers import AutoModelForSequenceClassification

    input_names = tokenizer_input_names(directory)
    model = AutoModelForSequenceClassification.from_pretrained(directory).eval()

    class _Logits(torch.nn.Module):
        """Positional inputs in ``input_names`` order -> logits (what ONNX needs)."""

        def __init__(self) -> None:
            super().__init__()
            self.model = model

        def forward(self, *tensors: torch.Tensor) -> torch.Tensor:
            return self.model(**dict(zip(input_names, tensors, strict=True))).logits

    ids = torch.randint(5, 50, (2, 8), dtype=torch.long)
    mask = torch.ones_like(ids)
    mask[1, 5:] = 0
    sample = {"input_ids": ids, "attention_mask": mask, "token_type_ids": torch.zeros_like(ids)}
    axes = {n: {0: "batch", 1: "sequence"} for n in input_names}
    axes["logits"] = {0: "batch"}
    target.parent.mkdir(parents=True, exist_ok=True)
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tracer warnings about python bools are expected
        torch.onnx.export(
            _Logits().eval(),
            tuple(sample[n] for n in input_names),
            str(target),
            input_names=input_names,
            output_names=["logits"],
            dynamic_axes=axes,
            opset_version=ONNX_OPSET,
            dynamo=False,
        )
    return input_names
