"""Publish a Hugging Face checkpoint directory as a new registered model version.

The checks run before anything is uploaded, so a refused checkpoint leaves no trace in
the registry. Weights must be safetensors: pickle formats can execute code on load. The
tokenizer must sit next to the weights, because a tokenizer that does not match the
checkpoint is the most common production failure for these models; publishing them as
one unit, under one manifest, makes that mismatch impossible to ship.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path

from modeldeploy.registry import golden
from modeldeploy.registry import manifest as manifests
from modeldeploy.registry.base import (
    TAG_FAMILY,
    TAG_LABELS,
    TAG_MANIFEST,
    TAG_MANIFEST_SHA256,
    TAG_MAX_LENGTH,
    TAG_PUBLISHED_AT,
    TAG_RECIPE,
    TAG_TEST_ACCURACY,
    TAG_VALIDATION_ACCURACY,
    TAG_WEIGHTS_FORMAT,
    ModelVersionInfo,
    PickleWeightsRefused,
    PublishRefused,
    RegistryClient,
)
from modeldeploy.registry.storage import StoreFactory, open_store
from modeldeploy.registry.triton import check_publishable as check_triton
from modeldeploy.registry.triton import publish_triton

PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".pkl", ".pickle", ".ckpt")
SAFE_WEIGHT_SUFFIX = ".safetensors"
# Any one of these makes a usable tokenizer (fast tokenizer, WordPiece, BPE, SentencePiece).
TOKENIZER_FILES = (
    "tokenizer.json",
    "vocab.txt",
    "vocab.json",
    "spiece.model",
    "sentencepiece.bpe.model",
)

# config.json model_type -> the family name the platform uses.
_FAMILIES = {"bert": "bert", "distilbert": "distilbert", "roberta": "roberta"}


@dataclass(frozen=True)
class CheckpointInfo:
    """What publishing learned from a checkpoint directory (pure data)."""

    family: str
    max_length: int | None
    labels: Mapping[str, str]
    weight_files: tuple[str, ...]
    tokenizer_files: tuple[str, ...]
    metrics: Mapping[str, object] = field(default_factory=dict)


def _read_json(path: Path) -> dict:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise PublishRefused(f"{path.name}: not readable JSON ({exc})") from None
    if not isinstance(data, dict):
        raise PublishRefused(f"{path.name}: expected a JSON object")
    return data


def inspect_checkpoint(root: Path) -> CheckpointInfo:
    """Validate a checkpoint directory; raise :class:`PublishRefused` saying what is wrong."""
    if not root.is_dir():
        raise PublishRefused(f"{root}: not a directory")
    files = manifests.list_files(root)
    pickles = [f for f in files if f.lower().endswith(PICKLE_SUFFIXES)]
    if pickles:
        raise PickleWeightsRefused(pickles)
    weights = tuple(f for f in files if f.endswith(SAFE_WEIGHT_SUFFIX))
    if not weights:
        raise PublishRefused(f"{root}: no *.safetensors weights found")
    tokenizer = tuple(f for f in files if Path(f).name in TOKENIZER_FILES)
    if not tokenizer:
        raise PublishRefused(
            f"{root}: no tokenizer next to the weights (expected one of "
            f"{', '.join(TOKENIZER_FILES)}); the tokenizer must be published with its checkpoint"
        )
    if "config.json" not in files:
        raise PublishRefused(f"{root}: config.json is missing")
    config = _read_json(root / "config.json")
    metrics = _read_json(root / "metrics.json") if "metrics.json" in files else {}
    tok_config = (
        _read_json(root / "tokenizer_config.json") if "tokenizer_config.json" in files else {}
    )
    return CheckpointInfo(
        family=_family(config, metrics),
        max_length=_max_length(metrics, tok_config),
        labels=_labels(root, files, config),
        weight_files=weights,
        tokenizer_files=tokenizer,
        metrics=metrics,
    )


def _family(config: Mapping, metrics: Mapping) -> str:
    if isinstance(metrics.get("family"), str):
        return str(metrics["family"])
    model_type = str(config.get("model_type", "unknown"))
    return _FAMILIES.get(model_type, model_type)


def _max_length(metrics: Mapping, tok_config: Mapping) -> int | None:
    for value in (metrics.get("max_length"), tok_config.get("model_max_length")):
        if isinstance(value, int) and 0 < value < 1_000_000:  # HF uses 1e30 for "no limit"
            return value
    return None


def _labels(root: Path, files: list[str], config: Mapping) -> dict[str, str]:
    """labels.json wins; else config.json's id2label. A label map is required."""
    if "labels.json" in files:
        raw = _read_json(root / "labels.json")
    else:
        raw = config.get("id2label") or {}
    labels = {str(k): str(v) for k, v in raw.items()}
    if not labels:
        raise PublishRefused(f"{root}: no label map (labels.json or config.json id2label)")
    return labels


def version_tags(
    info: CheckpointInfo, manifest: manifests.Manifest, now: datetime
) -> dict[str, str]:
    """The tags a published version carries (pure: same inputs, same tags)."""
    tags = {
        TAG_FAMILY: info.family,
        TAG_LABELS: json.dumps(dict(info.labels), sort_keys=True),
        TAG_MANIFEST: manifests.to_json(manifest),
        TAG_MANIFEST_SHA256: manifests.manifest_sha256(manifest),
        TAG_WEIGHTS_FORMAT: "safetensors",
        TAG_PUBLISHED_AT: now.astimezone(UTC).isoformat(timespec="seconds"),
    }
    if info.max_length is not None:
        tags[TAG_MAX_LENGTH] = str(info.max_length)
    for key, tag in (
        ("test_accuracy", TAG_TEST_ACCURACY),
        ("validation_accuracy", TAG_VALIDATION_ACCURACY),
    ):
        value = info.metrics.get(key)
        if isinstance(value, int | float) and not isinstance(value, bool):
            tags[tag] = f"{float(value):.6g}"
    if isinstance(info.metrics.get("recipe"), str):
        tags[TAG_RECIPE] = str(info.metrics["recipe"])
    return tags


def publish_checkpoint(
    client: RegistryClient,
    checkpoint_dir: Path,
    model: str,
    *,
    alias: str | None = None,
    description: str = "",
    now: datetime | None = None,
    triton_base_uri: str | None = None,
    triton_store: StoreFactory | None = open_store,
    golden_set: Path | None = None,
) -> ModelVersionInfo:
    """Validate, hash, upload and register ``checkpoint_dir`` as a new version of ``model``.

    With ``alias`` (typically ``challenger``) the alias is set on the new version, which
    is how a person or CI starts a rollout. Nothing is registered if validation fails.

    With ``triton_base_uri`` (``s3://``, ``gs://``, ``https://`` or ``pvc://``) the version
    also gets its Triton model repository as an artifact, with its manifest and the
    ``storageUri`` KServe loads it from as tags (``registry/triton.py``), and the repository
    is uploaded to that URI through ``triton_store`` (``registry/storage.py``; ``None``: not
    uploaded, copy it yourself). The base URI, the checkpoint's Triton files and the storage
    are checked before anything is registered; the alias is set only once the repository is
    in place, so a rollout never starts on half a version.

    With ``golden_set`` (a JSONL file of ``{"text", "label"}``) the version also gets its
    golden set (``registry/golden.py``): checked against the checkpoint's classes before
    anything is registered, uploaded before the alias is set.
    """
    checkpoint_dir = Path(checkpoint_dir)
    info = inspect_checkpoint(checkpoint_dir)
    examples = None
    if golden_set is not None:
        try:
            raw = Path(golden_set).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise golden.GoldenSetRefused(f"{golden_set}: cannot read it ({exc})") from exc
        examples = golden.parse_golden(raw, dict(info.labels), str(golden_set))
    if triton_base_uri is not None:
        check_triton(checkpoint_dir, triton_base_uri, model, triton_store)
    manifest = manifests.build_manifest(checkpoint_dir)
    tags = version_tags(info, manifest, now or datetime.now(UTC))
    created = client.create_version(model, checkpoint_dir, tags=tags, description=description)
    if triton_base_uri is not None:
        triton_tags = publish_triton(
            client,  # type: ignore[arg-type]  # needs log_version_artifacts (MlflowRegistry)
            model,
            created.version,
            checkpoint_dir,
            triton_base_uri,
            triton_store,
        )
        created = replace(created, tags={**created.tags, **triton_tags})
    if examples is not None:
        ref = golden.upload_golden(client, model, created.version, examples)  # type: ignore[arg-type]  # needs log_version_artifacts
        golden_tags = {
            golden.TAG_GOLDEN_SET: ref.uri,
            golden.TAG_GOLDEN_SHA256: ref.sha256,
            golden.TAG_GOLDEN_SIZE: str(ref.size),
        }
        created = replace(created, tags={**created.tags, **golden_tags})
    if alias:
        client.set_alias(model, alias, created.version)
        created = replace(created, aliases=(*created.aliases, alias))
    return created
