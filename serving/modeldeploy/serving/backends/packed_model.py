"""The classifier on packed batches (:mod:`packing`): no padding through the dense layers.

A Hugging Face ``...ForSequenceClassification`` takes padded rows and reads the first
token of each, so it can neither skip padding nor classify several sentences per row.
This runs the same weights as a different computation, layer by layer:

- embeddings (word + position, + token type 0 where the family has one) of the tokens laid
  end to end, then the embedding layer norm;
- per layer: one fused query/key/value product over the tokens; attention in the packed
  rows (a gather into rows, the block-diagonal bias, a gather back); the output product
  and its residual layer norm; the feed-forward products and theirs, all over the tokens;
- each sentence's first token through the family's own head, as the model would apply it
  to that sentence alone (BERT: pooler, classifier; RoBERTa: classification head;
  DistilBERT: pre-classifier, ReLU, classifier). Dropout is off in eval mode.

Nothing here is trusted on its own: :func:`torch_backend.export_trace` and
:func:`onnx_backend.export_packed` keep a packed graph only if its logits match the padded
eager model's on a probe batch, and the parity gate then checks the served runtime on the
held-out split.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

PACKABLE_FAMILIES = ("bert", "distilbert", "roberta")
PACKED_LAYOUT = "packed: dense layers on the tokens, attention in rows"
"""Recorded with every packed trace and graph: one made of the earlier rows-only packed
model (other inputs) no longer matches its record and is rebuilt."""


def position_offset(config: Mapping[str, Any]) -> int:
    """The first position id of a sentence, from the checkpoint's ``config.json``: RoBERTa
    counts from ``pad_token_id + 1``, BERT and DistilBERT from 0."""
    if config.get("model_type") == "roberta":
        return int(config.get("pad_token_id", 1)) + 1
    return 0


def position_offset_of(model_dir: Path) -> int:
    """:func:`position_offset` from ``model_dir/config.json`` (no transformers import)."""
    return position_offset(json.loads((model_dir / "config.json").read_text()))


def _layer_parts(layer: Any, family: str) -> tuple[list[Any], list[Any]]:
    """([query, key, value], [output, its norm, ff in, activation, ff out, its norm])."""
    if family == "distilbert":
        a = layer.attention
        return [a.q_lin, a.k_lin, a.v_lin], [
            a.out_lin, layer.sa_layer_norm, layer.ffn.lin1, layer.ffn.activation,
            layer.ffn.lin2, layer.output_layer_norm,
        ]  # fmt: skip
    s = layer.attention.self
    return [s.query, s.key, s.value], [
        layer.attention.output.dense, layer.attention.output.LayerNorm,
        layer.intermediate.dense, layer.intermediate.intermediate_act_fn,
        layer.output.dense, layer.output.LayerNorm,
    ]  # fmt: skip


def _head_parts(model: Any, family: str) -> list[Any]:
    """The family's head after the encoder (dropout is the identity in eval mode)."""
    if family == "bert":
        return [model.base_model.pooler, model.classifier]
    if family == "roberta":
        return [model.classifier]  # it reads the first token itself
    return [model.pre_classifier, model.classifier]


def packed_classifier(model: Any) -> Any:
    """A module ``(ids, positions, bias, slots, token_slot, first_token) -> logits`` (the
    arrays of :class:`packing.PackedBatch`) over ``model``'s weights, or None for a family
    this does not know how to pack."""
    import torch

    family = model.config.model_type
    if family not in PACKABLE_FAMILIES:
        return None
    config = model.config
    hidden = int(config.dim if family == "distilbert" else config.hidden_size)
    heads = int(config.n_heads if family == "distilbert" else config.num_attention_heads)
    base = model.base_model
    blocks = base.transformer.layer if family == "distilbert" else base.encoder.layer

    def fused(parts: list[Any]) -> Any:
        """One product for query, key and value: a third of the calls, the same sums."""
        linear = torch.nn.Linear(hidden, 3 * hidden)
        with torch.no_grad():
            linear.weight.copy_(torch.cat([p.weight for p in parts]))
            linear.bias.copy_(torch.cat([p.bias for p in parts]))
        return linear

    class PackedClassifier(torch.nn.Module):
        """Holds only the modules it runs: a trace of it stores no unused weights (the
        separate query, key and value products live on in ``model``, not here)."""

        def __init__(self) -> None:
            super().__init__()
            split = [_layer_parts(block, family) for block in blocks]
            self.embeddings = base.embeddings
            # Per layer: fused qkv, output, its norm, ff in, activation, ff out, its norm.
            self.layers = torch.nn.ModuleList(
                torch.nn.ModuleList([fused(qkv), *rest]) for qkv, rest in split
            )
            self.head = torch.nn.ModuleList(_head_parts(model, family))
            self.scale = 1.0 / math.sqrt(hidden // heads)

        def embed(self, ids: Any, positions: Any) -> Any:
            e = self.embeddings
            x = e.word_embeddings(ids) + e.position_embeddings(positions)
            if family != "distilbert":
                x = x + e.token_type_embeddings.weight[0]
            return e.LayerNorm(x)

        def forward(
            self, ids: Any, positions: Any, bias: Any, slots: Any, token_slot: Any, first: Any
        ) -> Any:
            rows, width = bias.shape[0], bias.shape[-1]
            x = self.embed(ids, positions)
            layers: list[Any] = list(self.layers)
            for layer in layers:
                qkv, out, norm1, ff_in, act, ff_out, norm2 = list(layer)
                mixed = qkv(x)
                # Padding slots read the zero row past the last token; what they compute
                # is never gathered back.
                padded = torch.cat([mixed, mixed.new_zeros(1, 3 * hidden)])[slots]
                q, k, v = padded.view(rows, width, 3, heads, -1).permute(2, 0, 3, 1, 4)
                scores = torch.matmul(q * self.scale, k.transpose(-1, -2)) + bias
                context = torch.matmul(torch.softmax(scores, dim=-1), v)
                context = context.transpose(1, 2).reshape(rows * width, hidden)[token_slot]
                x = norm1(out(context) + x)
                x = norm2(ff_out(act(ff_in(x))) + x)
            return self.classify(x[first])

        def classify(self, first: Any) -> Any:
            head: list[Any] = list(self.head)
            if family == "bert":
                pooler, classifier = head
                return classifier(pooler(first.unsqueeze(1)))
            if family == "roberta":
                return head[0](first.unsqueeze(1))
            pre_classifier, classifier = head
            return classifier(torch.relu(pre_classifier(first)))

    return PackedClassifier().eval()


def cast_linear_weights(model: Any, dtype: Any) -> None:
    """Store the linear layers' weights in ``dtype`` once, instead of autocast casting all of
    them on every pass: autocast computes those layers in ``dtype`` anyway, so the logits are
    the same (checked: identical in bf16), while a pass sheds the cast of every weight
    (MiniLM-L6 bf16, one sentence: 12.7 ms -> 7-8 ms). Layer norms and embeddings stay fp32.
    Pass the module that runs (the packed classifier owns its fused products)."""
    import torch

    for module in model.modules():
        if isinstance(module, torch.nn.Linear):
            module.to(dtype)
