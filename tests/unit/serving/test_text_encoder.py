"""Tokenization with the explicit truncation policy, on a real checkpoint's tokenizer."""

from __future__ import annotations

import pytest

from modeldeploy.serving.codecs import TextEncoder, TruncationPolicy
from modeldeploy.serving.errors import TextTooLong


@pytest.fixture(scope="module")
def encoder_for(tiny_checkpoint):
    def make(mode: str) -> TextEncoder:
        policy = TruncationPolicy(max_length=8, mode=mode, max_chars=1000)  # type: ignore[arg-type]
        return TextEncoder.from_directory(tiny_checkpoint, policy, token_types=True)

    return make


def test_truncate_mode_cuts_to_max_length_and_flags_it(encoder_for):
    short, long = encoder_for("truncate").encode(["good", "one two three four five six seven"])
    assert not short.truncated and len(short.ids) < 8
    assert long.truncated and len(long.ids) == 8


def test_reject_mode_refuses_over_long_text(encoder_for):
    with pytest.raises(TextTooLong, match="reject"):
        encoder_for("reject").encode(["one two three four five six seven eight"])


def test_no_padding_is_baked_in(encoder_for):
    (enc,) = encoder_for("truncate").encode(["ok"])
    assert len(enc.ids) <= 4  # [CLS] ok [SEP], never padded to a fixed length


# --- tokenization failures (docs/metrics.md: modeldeploy_tokenization_failures_total) ---

COMBINING_ACCENT = "\u0301"  # visible to the input check, erased by the uncased normaliser
UNREADABLE = "日本語 テキスト ☃☃"  # every word is [UNK] in the tiny English vocabulary


def _issues(encoder: TextEncoder, texts: list[str]) -> tuple[list[tuple[str, ...]], list[str]]:
    counted: list[str] = []
    encoded = encoder.encode(texts, counted.append)
    return [e.issues for e in encoded], counted


def test_each_failure_reason_is_found_on_a_real_tokenizer(encoder_for):
    issues, counted = _issues(
        encoder_for("truncate"),
        ["good film", COMBINING_ACCENT, UNREADABLE, "one two three four five six seven eight"],
    )
    assert issues == [(), ("empty",), ("unknown_tokens",), ("over_limit",)]
    assert counted == ["empty", "unknown_tokens", "over_limit"]


def test_a_refused_over_long_input_is_counted_before_it_is_refused(encoder_for):
    counted: list[str] = []
    with pytest.raises(TextTooLong):
        encoder_for("reject").encode(["one two three four five six seven eight"], counted.append)
    assert counted == ["over_limit"]


def test_one_unknown_word_among_many_is_not_a_failure(encoder_for):
    issues, _ = _issues(encoder_for("truncate"), ["a good ☃ film here"])
    assert issues == [()]  # at most 1 [UNK] among 5 or more content tokens


def test_the_unknown_share_limit_is_a_strict_bound() -> None:
    from modeldeploy.serving.codecs import tokenization_issues
    from modeldeploy.serving.contract.names import UNKNOWN_TOKEN_SHARE_LIMIT

    assert UNKNOWN_TOKEN_SHARE_LIMIT == 0.25
    assert tokenization_issues(4, 1, False) == ()
    assert tokenization_issues(4, 2, False) == ("unknown_tokens",)
    assert tokenization_issues(0, 0, True) == ("empty", "over_limit")


def test_encoding_without_offsets_gives_what_the_full_encoding_gives(encoder_for):
    """``encode`` uses ``encode_batch_fast`` (no character offsets): the same ids and
    special-token masks as ``encode_batch``, so the same predictions."""
    encoder = encoder_for("truncate")
    texts = [
        "a plain sentence",
        "",
        "   ",
        "\u200b",
        "Ünïcödé, accents and CJK 日本語 with an emoji 🙂",
        "word " * 40,
        "tabs\tand\nnewlines",
    ]
    fast = encoder.tokenizer.encode_batch_fast(texts)
    full = encoder.tokenizer.encode_batch(texts)
    for a, b in zip(fast, full, strict=True):
        assert a.ids == b.ids
        assert a.special_tokens_mask == b.special_tokens_mask
