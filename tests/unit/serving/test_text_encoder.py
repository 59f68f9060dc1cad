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
