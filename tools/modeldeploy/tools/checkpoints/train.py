"""Training loops for the recipes: pure torch, CPU-sized, deterministic.

Why not fine-tune everything: a full fine-tune of MiniLM-L6 takes about 8
minutes on 2 cores. Freezing layers 0–4 and caching their outputs once lets every
``minilm`` recipe train the top layer, the pooler and the classifier in about a
minute, which keeps the demo's first run within its budget while still moving
the encoder (a head on frozen CLS features alone reaches only ~0.71).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F
from transformers import BertForSequenceClassification

from modeldeploy.tools.checkpoints.families import bert_pooler, head_modules
from modeldeploy.tools.checkpoints.recipes import Recipe

Progress = Callable[[str], None]


def seed_everything(seed: int) -> torch.Generator:
    torch.manual_seed(seed)
    return torch.Generator().manual_seed(seed)


def noisy_labels(labels: Sequence[int], share: float, seed: int) -> np.ndarray:
    """Flip a fixed share of binary labels (symmetric noise), deterministically."""
    y = np.asarray(labels, dtype=np.int64).copy()
    if share <= 0:
        return y
    rng = np.random.default_rng(seed + 10_000)
    flip = rng.choice(len(y), size=round(share * len(y)), replace=False)
    y[flip] = 1 - y[flip]
    return y


def length_batches(
    lengths: Sequence[int], batch_size: int, rng: np.random.Generator | None
) -> list[np.ndarray]:
    """Group indices of similar length (less padding); shuffle batch order if ``rng``."""
    order = np.argsort(np.asarray(lengths), kind="stable")
    if rng is not None:
        # Sort within shuffled chunks so batches differ between epochs but stay tight.
        chunk = batch_size * 50
        shuffled = rng.permutation(len(order))
        order = np.concatenate(
            [
                shuffled[i : i + chunk][np.argsort(np.asarray(lengths)[shuffled[i : i + chunk]])]
                for i in range(0, len(shuffled), chunk)
            ]
        )
    batches = [order[i : i + batch_size] for i in range(0, len(order), batch_size)]
    if rng is not None:
        batches = [batches[i] for i in rng.permutation(len(batches))]
    return batches


def additive_mask(lengths: torch.Tensor, width: int, dtype: torch.dtype) -> torch.Tensor:
    """A (batch, 1, 1, width) additive attention mask: 0 for tokens, -inf-ish for padding."""
    positions = torch.arange(width)[None, :]
    keep = positions < lengths[:, None]
    mask = torch.zeros(keep.shape, dtype=dtype)
    mask[~keep] = torch.finfo(dtype).min
    return mask[:, None, None, :]


def pad_states(states: Sequence[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """Stack variable-length (len, hidden) tensors into (batch, max_len, hidden)."""
    lengths = torch.tensor([s.shape[0] for s in states])
    width = int(lengths.max())
    out = torch.zeros(len(states), width, states[0].shape[1], dtype=torch.float32)
    for i, s in enumerate(states):
        out[i, : s.shape[0]] = s.float()
    return out, lengths


def run_layers(
    layers: Sequence[nn.Module], hidden: torch.Tensor, lengths: torch.Tensor
) -> torch.Tensor:
    mask = additive_mask(lengths, hidden.shape[1], hidden.dtype)
    for layer in layers:
        out = layer(hidden, attention_mask=mask)
        hidden = out[0] if isinstance(out, tuple) else out
    return hidden


@dataclass
class TopLayerData:
    """Cached inputs to the top encoder layer(s), one (len, hidden) tensor per row."""

    states: list[torch.Tensor]
    labels: np.ndarray

    def batches(self, batch_size: int, rng: np.random.Generator | None) -> Iterator[np.ndarray]:
        yield from length_batches([s.shape[0] for s in self.states], batch_size, rng)


def train_top_layers(
    model: BertForSequenceClassification,
    first_trainable: int,
    data: TopLayerData,
    recipe: Recipe,
    progress: Progress,
) -> None:
    """Fine-tune encoder layers ``first_trainable:``, the pooler and the classifier."""
    seed_everything(recipe.seed)
    rng = np.random.default_rng(recipe.seed)
    layers = list(model.bert.encoder.layer[first_trainable:])
    params = [p for layer in layers for p in layer.parameters()]
    params += list(bert_pooler(model).parameters()) + list(model.classifier.parameters())
    for p in model.parameters():
        p.requires_grad_(False)
    for p in params:
        p.requires_grad_(True)
    optimizer = torch.optim.AdamW(params, lr=recipe.learning_rate, weight_decay=0.01)
    steps_per_epoch = math.ceil(len(data.states) / recipe.batch_size)
    total = int(steps_per_epoch * recipe.epochs)
    if recipe.max_steps is not None:
        total = min(total, recipe.max_steps)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: max(0.0, 1.0 - step / max(1, total))
    )
    model.train()
    step = 0
    labels = torch.as_tensor(data.labels)
    while step < total:
        for idx in data.batches(recipe.batch_size, rng):
            if step >= total:
                break
            hidden, lengths = pad_states([data.states[i] for i in idx])
            hidden = run_layers(layers, hidden, lengths)
            pooled = bert_pooler(model)(hidden)
            logits = model.classifier(model.dropout(pooled))
            loss = F.cross_entropy(logits, labels[idx])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            schedule.step()
            step += 1
            if step % 100 == 0 or step == total:
                progress(f"step {step}/{total} loss {loss.item():.3f}")
    model.eval()


@torch.no_grad()
def top_cls_features(
    model: BertForSequenceClassification, first_layer: int, states: Sequence[torch.Tensor]
) -> torch.Tensor:
    """CLS output of the last encoder layer, computed from cached layer inputs."""
    model.eval()
    layers = list(model.bert.encoder.layer[first_layer:])
    out = torch.zeros(len(states), model.config.hidden_size)
    for idx in length_batches([s.shape[0] for s in states], 128, None):
        hidden, lengths = pad_states([states[i] for i in idx])
        out[torch.as_tensor(idx)] = run_layers(layers, hidden, lengths)[:, 0]
    return out


def train_head(
    model: torch.nn.Module, features: torch.Tensor, labels: np.ndarray, seed: int, steps: int = 400
) -> None:
    """Fit a family's classification head on fixed CLS features (seconds)."""
    gen = seed_everything(seed)
    dense, act, proj = head_modules(model)
    params = [*dense.parameters(), *proj.parameters()]
    for p in params:
        p.requires_grad_(True)
    optimizer = torch.optim.AdamW(params, lr=1e-3, weight_decay=0.01)
    y = torch.as_tensor(labels)
    for _ in range(steps):
        idx = torch.randint(0, len(y), (256,), generator=gen)
        loss = F.cross_entropy(proj(act(dense(features[idx]))), y[idx])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    for p in params:
        p.requires_grad_(False)


def train_full(
    model: BertForSequenceClassification,
    encoded: Sequence[Sequence[int]],
    labels: np.ndarray,
    recipe: Recipe,
    progress: Progress,
) -> None:
    """Train every weight of a small model from token ids (the ``tiny`` recipes)."""
    seed_everything(recipe.seed)
    rng = np.random.default_rng(recipe.seed)
    optimizer = torch.optim.AdamW(model.parameters(), lr=recipe.learning_rate, weight_decay=0.01)
    steps_per_epoch = math.ceil(len(encoded) / recipe.batch_size)
    total = int(steps_per_epoch * recipe.epochs)
    if recipe.max_steps is not None:
        total = min(total, recipe.max_steps)
    y = torch.as_tensor(labels)
    model.train()
    step = 0
    while step < total:
        for idx in length_batches([len(e) for e in encoded], recipe.batch_size, rng):
            if step >= total:
                break
            ids, mask = pad_ids([encoded[i] for i in idx], model.config.pad_token_id or 0)
            loss = F.cross_entropy(model(input_ids=ids, attention_mask=mask).logits, y[idx])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            step += 1
            if step % 200 == 0 or step == total:
                progress(f"step {step}/{total} loss {loss.item():.3f}")
    model.eval()


def pad_ids(rows: Sequence[Sequence[int]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    width = max(len(r) for r in rows)
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, r in enumerate(rows):
        ids[i, : len(r)] = torch.as_tensor(r)
        mask[i, : len(r)] = 1
    return ids, mask


@torch.no_grad()
def encoder_cls_features(
    model: BertForSequenceClassification, encoded: Sequence[Sequence[int]]
) -> torch.Tensor:
    """CLS output of the last encoder layer by a full forward pass (small models)."""
    out = torch.zeros(len(encoded), model.config.hidden_size)
    for idx in length_batches([len(e) for e in encoded], 128, None):
        ids, mask = pad_ids([encoded[i] for i in idx], model.config.pad_token_id or 0)
        hidden = model.bert(input_ids=ids, attention_mask=mask).last_hidden_state
        out[torch.as_tensor(idx)] = hidden[:, 0]
    return out


@torch.no_grad()
def append_passthrough_layers(
    model: BertForSequenceClassification, count: int
) -> BertForSequenceClassification:
    """Append ``count`` layers whose residual branches are zero.

    Each appended layer still does all of its matrix products (real compute, so
    real latency), but its attention and feed-forward outputs are zero, so it
    only re-normalises the hidden state. The caller retrains the head on the
    resulting features, which keeps accuracy equal to the source model's.
    """
    if count <= 0:
        return model
    config = model.config.__class__.from_dict(model.config.to_dict())
    config.num_hidden_layers = model.config.num_hidden_layers + count
    grown = BertForSequenceClassification(config).eval()
    _missing, unexpected = grown.load_state_dict(model.state_dict(), strict=False)
    if unexpected:
        raise RuntimeError(f"unexpected weights while growing model: {unexpected}")
    last = model.bert.encoder.layer[-1]
    for layer in grown.bert.encoder.layer[model.config.num_hidden_layers :]:
        layer.load_state_dict(last.state_dict())
        for dense in (layer.attention.output.dense, layer.output.dense):
            dense.weight.zero_()
            dense.bias.zero_()
        for norm in (layer.attention.output.LayerNorm, layer.output.LayerNorm):
            norm.weight.fill_(1.0)
            norm.bias.zero_()
    return grown
