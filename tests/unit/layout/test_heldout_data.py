"""The held-out sentences shipped in modeldeploy.serving.data equal the fixed split."""

from __future__ import annotations

from pathlib import Path

import pytest

from modeldeploy.serving import data
from modeldeploy.tools.checkpoints import heldout
from modeldeploy.tools.checkpoints.data import load_split


@pytest.mark.parametrize(("name", "part"), sorted(heldout.EXPORTS.items()))
def test_shipped_file_is_what_the_tool_renders_from_the_split(name: str, part: str) -> None:
    assert data.read_text(name) == heldout.render(part)  # type: ignore[arg-type]


@pytest.mark.parametrize(("name", "part"), sorted(heldout.EXPORTS.items()))
def test_held_out_reader_returns_the_split_in_order(name: str, part: str) -> None:
    split = load_split(part)  # type: ignore[arg-type]
    texts, labels = data.held_out(name)
    assert texts == list(split.texts)
    assert labels == list(split.labels)


def test_check_reports_a_stale_file_and_export_repairs_it(tmp_path: Path) -> None:
    heldout.export(tmp_path)
    assert heldout.stale(tmp_path) == []
    (tmp_path / data.TEST).write_text('{"text": "edited", "label": 1}\n')
    assert heldout.stale(tmp_path) == [data.TEST]


def test_shipped_files_are_ascii_one_record_per_line() -> None:
    for name in data.SHIPPED:
        text = data.read_text(name)
        assert text.isascii()
        assert len(text.splitlines()) == len(data.held_out(name)[0])


def test_unknown_data_file_is_refused_clearly() -> None:
    with pytest.raises(ValueError, match=r"unknown data file 'train\.jsonl'"):
        data.read_text("train.jsonl")
