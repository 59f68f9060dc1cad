"""The fixed split is the contract behind every accuracy figure: it must never drift."""

from __future__ import annotations

from collections import Counter

import pytest

from modeldeploy.tools.checkpoints.data import load_split


def test_split_sizes_are_80_10_10_of_the_rotten_tomatoes_rows() -> None:
    sizes = {name: len(load_split(name)) for name in ("train", "validation", "test")}
    assert sum(sizes.values()) == 8530
    assert sizes == {"train": 6824, "validation": 852, "test": 854}


def test_split_parts_are_disjoint() -> None:
    parts = [set(zip(s.texts, s.labels, strict=True)) for s in map(load_split, ("train", "test"))]
    # Identical sentences can occur twice in the corpus; the overlap must be tiny, not a leak.
    assert len(parts[0] & parts[1]) <= 5


@pytest.mark.parametrize("name", ["train", "validation", "test"])
def test_split_is_stratified(name: str) -> None:
    counts = Counter(load_split(name).labels)
    assert set(counts) == {0, 1}
    assert abs(counts[0] - counts[1]) <= 1


def test_split_is_deterministic_across_calls() -> None:
    first = load_split("test")
    load_split.__globals__["_split_indices"].cache_clear()
    again = load_split("test")
    assert first.fingerprint() == again.fingerprint()
    assert first.texts[:3] == again.texts[:3]


def test_unknown_split_name_is_refused_clearly() -> None:
    with pytest.raises(ValueError, match="unknown split 'dev'"):
        load_split("dev")  # type: ignore[arg-type]


def test_head_keeps_rows_aligned() -> None:
    head = load_split("validation").head(10)
    assert len(head) == 10
    assert len(head.labels) == 10
