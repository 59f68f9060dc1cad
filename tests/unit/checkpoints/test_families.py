"""One set of BERT weights emitted as BERT, DistilBERT and RoBERTa computes the same thing."""

from __future__ import annotations

import torch
from transformers import BertConfig, BertForSequenceClassification

from modeldeploy.tools.checkpoints.families import convert, to_distilbert, to_roberta
from modeldeploy.tools.checkpoints.train import append_passthrough_layers


def _small_bert() -> BertForSequenceClassification:
    torch.manual_seed(0)
    config = BertConfig(
        vocab_size=50,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=40,
        pad_token_id=0,
        num_labels=2,
    )
    model = BertForSequenceClassification(config).eval()
    with torch.no_grad():  # make token-type 0 non-trivial so folding it is really tested
        model.bert.embeddings.token_type_embeddings.weight.normal_()
    return model


def _batch() -> dict[str, torch.Tensor]:
    ids = torch.tensor([[2, 7, 9, 11, 3, 0, 0], [2, 5, 6, 8, 12, 13, 3]])
    return {"input_ids": ids, "attention_mask": (ids != 0).long()}


@torch.no_grad()
def test_roberta_conversion_reproduces_bert_logits_exactly() -> None:
    bert = _small_bert()
    roberta = to_roberta(bert).eval()
    expected = bert(**_batch()).logits
    assert torch.allclose(roberta(**_batch()).logits, expected, atol=1e-5)


@torch.no_grad()
def test_distilbert_conversion_reproduces_bert_encoder_outputs() -> None:
    bert = _small_bert()
    distil = to_distilbert(bert).eval()
    batch = _batch()
    expected = bert.bert(**batch).last_hidden_state
    got = distil.distilbert(**batch).last_hidden_state
    mask = batch["attention_mask"].bool()
    assert torch.allclose(got[mask], expected[mask], atol=1e-5)


def test_convert_bert_is_identity() -> None:
    bert = _small_bert()
    assert convert(bert, "bert") is bert


@torch.no_grad()
def test_passthrough_layers_add_compute_but_keep_predictions_close() -> None:
    bert = _small_bert()
    grown = append_passthrough_layers(bert, 3).eval()
    assert grown.config.num_hidden_layers == 5
    base = bert.bert(**_batch()).last_hidden_state[:, 0]
    out = grown.bert(**_batch()).last_hidden_state[:, 0]
    normalised = torch.nn.functional.layer_norm(base, base.shape[-1:])
    # The appended layers only re-normalise the CLS state (the caller refits the head).
    assert torch.allclose(out, normalised, atol=1e-3)
