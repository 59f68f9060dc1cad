"""A version's golden set: labelled examples published with it, for the prober.

A golden set belongs to a model version, not to the platform: a real model is not the
demo's sentiment model, so one packaged set cannot serve everyone. It is published the
MLflow way, as an artifact of the version (``golden/golden.jsonl``, one
``{"text": ..., "label": ...}`` per line) with three tags that say where it is, its SHA-256
and its size. The prober reads the *stable* version's set (the version the canary is
compared against, whose classes the labels name) and checks the digest before using it.

Validation, before anything is uploaded (a refused set leaves no trace):

- every label is one of the version's classes (``modeldeploy.labels``: an index or a name);
- no text appears twice: the models are deterministic, so a repeated text is the same
  evidence counted twice, which would shrink the intervals falsely (docs/statistics.md);
- at most ``MAX_EXAMPLES`` examples, ``MAX_TEXT_CHARS`` characters each and ``MAX_BYTES``
  in all, so a golden set never becomes a dataset the prober holds in memory;
- a version's golden set never changes once set (like its files): the prober's order of
  examples belongs to one set, and a set swapped mid-rollout could repeat examples.
"""

from __future__ import annotations

import hashlib
import json
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from modeldeploy.registry.base import (
    TAG_LABELS,
    TAG_PREFIX,
    IntegrityError,
    NotFound,
    PublishRefused,
    RegistryClient,
)

TAG_GOLDEN_SET = TAG_PREFIX + "golden_set"  # the artifact URI of the folder
TAG_GOLDEN_SHA256 = TAG_PREFIX + "golden_set_sha256"
TAG_GOLDEN_SIZE = TAG_PREFIX + "golden_set_size"
ARTIFACT_PATH = "golden"
FILE_NAME = "golden.jsonl"
MAX_EXAMPLES = 20_000
MAX_TEXT_CHARS = 4_000
MAX_BYTES = 8 * 1024 * 1024


class GoldenSetRefused(PublishRefused):
    """The file is not a usable golden set for this version (the message says why)."""


@dataclass(frozen=True)
class GoldenExamples:
    """Validated examples: texts and labels (class index or name), distinct texts."""

    texts: tuple[str, ...]
    labels: tuple[int | str, ...]

    def to_jsonl(self) -> str:
        rows = (
            json.dumps({"text": t, "label": lbl}, ensure_ascii=False)
            for t, lbl in zip(self.texts, self.labels, strict=True)
        )
        return "".join(row + "\n" for row in rows)


@dataclass(frozen=True)
class GoldenRef:
    """Where a version's golden set is, as its tags say."""

    uri: str
    sha256: str
    size: int


class ArtifactClient(RegistryClient, Protocol):
    """A registry client that can attach and fetch extra artifacts (MlflowRegistry)."""

    def log_version_artifacts(
        self, name: str, version: str, local_dir: Path, artifact_path: str
    ) -> str: ...

    def download_artifacts(self, uri: str, dst_dir: Path) -> Path: ...


def classes_of(tags: Mapping[str, str]) -> dict[str, str] | None:
    """The version's classes (index -> name) from its labels tag; None when it has none."""
    raw = tags.get(TAG_LABELS)
    if not raw:
        return None
    try:
        data = json.loads(raw)
    except ValueError:
        return None
    return {str(k): str(v) for k, v in data.items()} if isinstance(data, dict) else None


def parse_golden(
    text: str, classes: Mapping[str, str] | None = None, source: str = "<golden set>"
) -> GoldenExamples:
    """Parse and validate JSONL; raises :class:`GoldenSetRefused` naming the line."""
    if len(text.encode("utf-8")) > MAX_BYTES:
        raise GoldenSetRefused(f"{source}: larger than {MAX_BYTES} bytes")
    names = set(classes.values()) if classes else set()
    texts: list[str] = []
    labels: list[int | str] = []
    first_line: dict[str, int] = {}
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row: Any = json.loads(line)
        except ValueError as exc:
            raise GoldenSetRefused(f"{source}:{number}: not JSON ({exc})") from exc
        if not isinstance(row, dict) or not isinstance(row.get("text"), str):
            raise GoldenSetRefused(f'{source}:{number}: expected {{"text": "...", "label": ...}}')
        sentence, label = row["text"], row.get("label")
        if not sentence.strip():
            raise GoldenSetRefused(f"{source}:{number}: empty text")
        if len(sentence) > MAX_TEXT_CHARS:
            raise GoldenSetRefused(f"{source}:{number}: text over {MAX_TEXT_CHARS} characters")
        if isinstance(label, bool) or not isinstance(label, int | str):
            raise GoldenSetRefused(f"{source}:{number}: label must be a class index or name")
        if classes is not None and str(label) not in classes and label not in names:
            known = ", ".join(f"{k} ({v})" for k, v in sorted(classes.items()))
            raise GoldenSetRefused(
                f"{source}:{number}: label {label!r} is not one of the model's classes: {known}"
            )
        if sentence in first_line:
            raise GoldenSetRefused(
                f"{source}:{number}: the same text as line {first_line[sentence]} (a repeated"
                " example is the same evidence twice: each text may appear once)"
            )
        first_line[sentence] = number
        texts.append(sentence)
        labels.append(label)
        if len(texts) > MAX_EXAMPLES:
            raise GoldenSetRefused(f"{source}: more than {MAX_EXAMPLES} examples")
    if not texts:
        raise GoldenSetRefused(f"{source}: no examples")
    return GoldenExamples(tuple(texts), tuple(labels))


def golden_ref(tags: Mapping[str, str]) -> GoldenRef | None:
    """The version's golden set as its tags name it, or None when it has none."""
    uri, digest = tags.get(TAG_GOLDEN_SET), tags.get(TAG_GOLDEN_SHA256)
    if not uri or not digest:
        return None
    try:
        size = int(tags.get(TAG_GOLDEN_SIZE, "0"))
    except ValueError:
        size = 0
    return GoldenRef(uri, digest, size)


def publish_golden(client: ArtifactClient, model: str, version: str, path: Path | str) -> GoldenRef:
    """Validate ``path`` against the version's classes, upload it, tag the version."""
    path = Path(path)
    try:
        raw = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise GoldenSetRefused(f"{path}: cannot read it ({exc})") from exc
    info = client.get_version(model, str(version))
    if golden_ref(info.tags) is not None:
        raise GoldenSetRefused(
            f"{model} version {version} already has a golden set; it cannot change (a prober"
            " in the middle of a rollout would count examples of both sets): publish a new"
            " version"
        )
    examples = parse_golden(raw, classes_of(info.tags), str(path))
    return upload_golden(client, model, str(version), examples)


def upload_golden(
    client: ArtifactClient, model: str, version: str, examples: GoldenExamples
) -> GoldenRef:
    """Upload validated ``examples`` as the version's golden set; the tags are set last."""
    body = examples.to_jsonl()
    with tempfile.TemporaryDirectory(prefix="modeldeploy-golden-") as tmp:
        folder = Path(tmp) / ARTIFACT_PATH
        folder.mkdir()
        (folder / FILE_NAME).write_text(body, encoding="utf-8")
        uri = client.log_version_artifacts(model, str(version), folder, ARTIFACT_PATH)
    ref = GoldenRef(uri, hashlib.sha256(body.encode("utf-8")).hexdigest(), len(examples.texts))
    client.set_version_tag(model, str(version), TAG_GOLDEN_SIZE, str(ref.size))
    client.set_version_tag(model, str(version), TAG_GOLDEN_SHA256, ref.sha256)
    client.set_version_tag(model, str(version), TAG_GOLDEN_SET, ref.uri)  # last: it is there
    return ref


def read_golden(client: ArtifactClient, model: str, version: str) -> GoldenExamples:
    """The version's golden set, downloaded and checked against its digest.

    Raises :class:`NotFound` when the version has none, :class:`IntegrityError` when the
    download does not match the digest it was published with.
    """
    info = client.get_version(model, str(version))
    ref = golden_ref(info.tags)
    if ref is None:
        raise NotFound(f"{model} version {version} has no golden set")
    with tempfile.TemporaryDirectory(prefix="modeldeploy-golden-") as tmp:
        local = Path(client.download_artifacts(ref.uri, Path(tmp)))
        file = local / FILE_NAME if local.is_dir() else local
        data = file.read_bytes()
    if hashlib.sha256(data).hexdigest() != ref.sha256:
        raise IntegrityError(FILE_NAME, f"{model} version {version}: golden set digest differs")
    return parse_golden(data.decode("utf-8"), classes_of(info.tags), f"{model} v{version}")
