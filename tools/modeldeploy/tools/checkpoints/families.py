"""Emit one set of BERT weights as BERT, DistilBERT or RoBERTa.

The three families share the transformer block; they differ in naming, in how
positions and token types are embedded, and in the classification head. The
mappings here are exact for the encoder (outputs agree to float rounding), and
exact for the RoBERTa head (dense + tanh + projection, like BERT's pooler +
classifier). DistilBERT's head uses ReLU instead of tanh, so its head is
retrained on the encoder's CLS features by the caller.
"""

from __future__ import annotations

from typing import Any

import torch
from transformers import (
    BertForSequenceClassification,
    DistilBertConfig,
    DistilBertForSequenceClassification,
    PreTrainedModel,
    RobertaConfig,
    RobertaForSequenceClassification,
)

from modeldeploy.tools.checkpoints.recipes import Family


def bert_pooler(model: BertForSequenceClassification) -> Any:
    """BERT's pooler (dense + tanh over CLS); our classifiers always have one."""
    if model.bert.pooler is None:
        raise ValueError("this BERT classifier has no pooler (add_pooling_layer=False)")
    return model.bert.pooler


def _copy(dst: torch.Tensor, src: torch.Tensor) -> None:
    if dst.shape != src.shape:
        raise ValueError(f"shape mismatch while converting weights: {dst.shape} vs {src.shape}")
    dst.copy_(src)


@torch.no_grad()
def to_distilbert(bert: BertForSequenceClassification) -> DistilBertForSequenceClassification:
    """Copy BERT weights into DistilBERT (head left for the caller to train)."""
    cfg = bert.config
    fields: dict[str, Any] = dict(
        vocab_size=cfg.vocab_size,
        max_position_embeddings=cfg.max_position_embeddings,
        dim=cfg.hidden_size,
        n_layers=cfg.num_hidden_layers,
        n_heads=cfg.num_attention_heads,
        hidden_dim=cfg.intermediate_size,
        activation="gelu",
        dropout=cfg.hidden_dropout_prob,
        attention_dropout=cfg.attention_probs_dropout_prob,
        seq_classif_dropout=cfg.hidden_dropout_prob,
        pad_token_id=cfg.pad_token_id,
        num_labels=cfg.num_labels,
        id2label=cfg.id2label,
        label2id=cfg.label2id,
    )
    dcfg = DistilBertConfig(**fields)
    out = DistilBertForSequenceClassification(dcfg).eval()
    src: Any = bert.bert
    dst: Any = out.distilbert
    _copy(dst.embeddings.word_embeddings.weight, src.embeddings.word_embeddings.weight)
    # DistilBERT has no token types: fold type 0 into every position.
    _copy(
        dst.embeddings.position_embeddings.weight,
        src.embeddings.position_embeddings.weight + src.embeddings.token_type_embeddings.weight[0],
    )
    _copy(dst.embeddings.LayerNorm.weight, src.embeddings.LayerNorm.weight)
    _copy(dst.embeddings.LayerNorm.bias, src.embeddings.LayerNorm.bias)
    for s, d in zip(src.encoder.layer, dst.transformer.layer, strict=True):
        pairs = [
            (d.attention.q_lin, s.attention.self.query),
            (d.attention.k_lin, s.attention.self.key),
            (d.attention.v_lin, s.attention.self.value),
            (d.attention.out_lin, s.attention.output.dense),
            (d.sa_layer_norm, s.attention.output.LayerNorm),
            (d.ffn.lin1, s.intermediate.dense),
            (d.ffn.lin2, s.output.dense),
            (d.output_layer_norm, s.output.LayerNorm),
        ]
        for dm, sm in pairs:
            _copy(dm.weight, sm.weight)
            _copy(dm.bias, sm.bias)
    # Start the ReLU head from BERT's tanh head; the caller fine-tunes it.
    _copy(out.pre_classifier.weight, bert_pooler(bert).dense.weight)
    _copy(out.pre_classifier.bias, bert_pooler(bert).dense.bias)
    _copy(out.classifier.weight, bert.classifier.weight)
    _copy(out.classifier.bias, bert.classifier.bias)
    return out


@torch.no_grad()
def to_roberta(bert: BertForSequenceClassification) -> RobertaForSequenceClassification:
    """Copy BERT weights into RoBERTa exactly (positions shift by one past the pad id)."""
    cfg = bert.config
    pad = cfg.pad_token_id if cfg.pad_token_id is not None else 0
    fields: dict[str, Any] = dict(
        vocab_size=cfg.vocab_size,
        hidden_size=cfg.hidden_size,
        num_hidden_layers=cfg.num_hidden_layers,
        num_attention_heads=cfg.num_attention_heads,
        intermediate_size=cfg.intermediate_size,
        hidden_act=cfg.hidden_act,
        hidden_dropout_prob=cfg.hidden_dropout_prob,
        attention_probs_dropout_prob=cfg.attention_probs_dropout_prob,
        # RoBERTa numbers positions from pad_id + 1, so it needs pad_id + 1 extra rows.
        max_position_embeddings=cfg.max_position_embeddings + pad + 1,
        type_vocab_size=1,
        layer_norm_eps=cfg.layer_norm_eps,
        pad_token_id=pad,
        num_labels=cfg.num_labels,
        id2label=cfg.id2label,
        label2id=cfg.label2id,
    )
    rcfg = RobertaConfig(**fields)
    out = RobertaForSequenceClassification(rcfg).eval()
    src: Any = bert.bert
    dst: Any = out.roberta
    _copy(dst.embeddings.word_embeddings.weight, src.embeddings.word_embeddings.weight)
    positions = torch.zeros_like(dst.embeddings.position_embeddings.weight)
    positions[pad + 1 : pad + 1 + cfg.max_position_embeddings] = (
        src.embeddings.position_embeddings.weight
    )
    _copy(dst.embeddings.position_embeddings.weight, positions)
    _copy(
        dst.embeddings.token_type_embeddings.weight, src.embeddings.token_type_embeddings.weight[:1]
    )
    _copy(dst.embeddings.LayerNorm.weight, src.embeddings.LayerNorm.weight)
    _copy(dst.embeddings.LayerNorm.bias, src.embeddings.LayerNorm.bias)
    dst.encoder.load_state_dict(src.encoder.state_dict())
    _copy(out.classifier.dense.weight, bert_pooler(bert).dense.weight)
    _copy(out.classifier.dense.bias, bert_pooler(bert).dense.bias)
    _copy(out.classifier.out_proj.weight, bert.classifier.weight)
    _copy(out.classifier.out_proj.bias, bert.classifier.bias)
    return out


def convert(bert: BertForSequenceClassification, family: Family) -> PreTrainedModel:
    """Return ``bert`` as the requested family."""
    if family == "bert":
        return bert
    if family == "distilbert":
        return to_distilbert(bert)
    if family == "roberta":
        return to_roberta(bert)
    raise ValueError(f"unknown family {family!r}")


def head_modules(
    model: torch.nn.Module,
) -> tuple[torch.nn.Linear, torch.nn.Module, torch.nn.Linear]:
    """The (dense, activation, projection) of a family's classification head."""
    if isinstance(model, BertForSequenceClassification):
        return bert_pooler(model).dense, torch.nn.Tanh(), model.classifier
    if isinstance(model, DistilBertForSequenceClassification):
        return model.pre_classifier, torch.nn.ReLU(), model.classifier
    if isinstance(model, RobertaForSequenceClassification):
        return model.classifier.dense, torch.nn.Tanh(), model.classifier.out_proj
    raise TypeError(f"unsupported model class {type(model).__name__}")
