"""The tiny recipes' vocabulary is built deterministically, so tiny checkpoints are too."""

from __future__ import annotations

from modeldeploy.tools.checkpoints.factory import TINY_SPECIALS, tiny_vocabulary


def test_vocabulary_starts_with_the_special_tokens_in_order() -> None:
    vocab = tiny_vocabulary(["Good film."], size=50)
    assert [t for t, i in sorted(vocab.items(), key=lambda kv: kv[1])][:5] == list(TINY_SPECIALS)


def test_every_character_is_kept_alone_and_as_a_continuation() -> None:
    vocab = tiny_vocabulary(["abc"], size=50)
    assert {"a", "b", "c", "##a", "##b", "##c"} <= set(vocab)


def test_frequent_words_win_and_ties_break_alphabetically() -> None:
    texts = ["zeta alpha alpha beta", "beta gamma"]
    # specials (5) + chars + ##chars leave room for exactly two words.
    chars = sorted(set("zetaalphabetagamma"))
    vocab = tiny_vocabulary(texts, size=5 + 2 * len(chars) + 2)
    words = [t for t in vocab if len(t) > 1 and not t.startswith(("##", "["))]
    assert words == ["alpha", "beta"]  # count 2 each; gamma and zeta (count 1) are cut


def test_same_texts_give_the_same_ids() -> None:
    texts = ["The plot is thin.", "A warm, funny film!", "the film is warm"] * 3
    assert tiny_vocabulary(texts) == tiny_vocabulary(list(reversed(texts)))
