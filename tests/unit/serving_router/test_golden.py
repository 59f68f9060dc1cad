"""Rules of the prober's golden-set file."""

from __future__ import annotations

import pytest

from modeldeploy.serving.prober.golden import parse_jsonl


def test_jsonl_rows_give_texts_and_labels_by_index_or_name() -> None:
    golden = parse_jsonl('{"text": "good", "label": 1}\n\n{"text": "bad", "label": "negative"}\n')
    assert golden.texts == ("good", "bad")
    assert golden.labels == (1, "negative")


@pytest.mark.parametrize(
    "line",
    ["not json", '{"label": 1}', '{"text": "x", "label": true}', '{"text": "x"}', "[1, 2]"],
)
def test_malformed_rows_name_their_line(line: str) -> None:
    with pytest.raises(ValueError, match=r"golden\.jsonl:2"):
        parse_jsonl('{"text": "ok", "label": 0}\n' + line, "golden.jsonl")


def test_an_empty_file_is_not_a_golden_set() -> None:
    with pytest.raises(ValueError, match="at least one"):
        parse_jsonl("\n\n")
