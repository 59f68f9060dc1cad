"""The golden set the prober draws from: labelled texts (pure apart from reading the file).

Each text appears once: the models are deterministic, so a repeated text is the same
evidence twice (``registry/golden.py`` refuses such a set at publishing, and so does this).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from modeldeploy.serving import data


@dataclass(frozen=True)
class GoldenSet:
    """Texts with their true labels (class index or class name), same length."""

    texts: tuple[str, ...]
    labels: tuple[int | str, ...]

    def __post_init__(self) -> None:
        if len(self.texts) != len(self.labels):
            raise ValueError("a golden set needs one label per text")
        if not self.texts:
            raise ValueError("a golden set needs at least one example")
        if len(set(self.texts)) != len(self.texts):
            raise ValueError("a golden set names each text once (a repeat is not new evidence)")


def parse_jsonl(text: str, source: str = "<jsonl>") -> GoldenSet:
    """One ``{"text": ..., "label": ...}`` object per line; blank lines are skipped."""
    texts: list[str] = []
    labels: list[int | str] = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except ValueError as exc:
            raise ValueError(f"{source}:{number}: not JSON ({exc})") from exc
        if not isinstance(row, dict) or not isinstance(row.get("text"), str):
            raise ValueError(f'{source}:{number}: expected {{"text": "...", "label": ...}}')
        label = row.get("label")
        if isinstance(label, bool) or not isinstance(label, int | str):
            raise ValueError(f"{source}:{number}: label must be a class index or name")
        texts.append(row["text"])
        labels.append(label)
    return GoldenSet(tuple(texts), tuple(labels))


def load_golden(path: Path | None = None) -> GoldenSet:
    """The JSONL file at ``path``, or by default the held-out test split.

    The default ships with the package (``modeldeploy.serving.data``), so the prober
    needs no training code or corpus at run time.
    """
    if path is not None:
        return parse_jsonl(Path(path).read_text(), str(path))
    return parse_jsonl(data.read_text(data.TEST), f"{data.__name__}/{data.TEST}")
