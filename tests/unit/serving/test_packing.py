"""Packing several sentences into one row: every sentence must see exactly what it would alone."""

from __future__ import annotations

import numpy as np
import pytest

from modeldeploy.serving.codecs import pad_batch
from modeldeploy.serving.packing import WIDTH_MULTIPLE, pack, pack_rows, token_bucket, unpad


def _attention_alone(q: np.ndarray, k: np.ndarray, v: np.ndarray) -> np.ndarray:
    scores = q @ k.T / np.sqrt(q.shape[1])
    weights = np.exp(scores - scores.max(axis=1, keepdims=True))
    return (weights / weights.sum(axis=1, keepdims=True)) @ v


def _attention_with_bias(q: np.ndarray, k: np.ndarray, v: np.ndarray, bias: np.ndarray):
    scores = q @ k.T / np.sqrt(q.shape[1]) + bias
    weights = np.exp(scores - scores.max(axis=1, keepdims=True))
    return (weights / weights.sum(axis=1, keepdims=True)) @ v


@pytest.mark.parametrize("seed", range(20))
def test_rows_hold_every_item_once_and_never_overflow(seed):
    rng = np.random.default_rng(seed)
    lengths = [int(n) for n in rng.integers(1, 90, size=rng.integers(1, 40))]
    rows = pack_rows(lengths, 64)
    assert sorted(i for row in rows for i in row) == list(range(len(lengths)))
    for row in rows:
        assert sum(lengths[i] for i in row) <= max(64, max(lengths))
    # first fit, longest first: no two rows could have been merged
    fill = sorted(sum(lengths[i] for i in row) for row in rows)
    assert len(fill) == 1 or fill[0] + fill[1] > max(64, max(lengths))


def test_a_sentence_longer_than_a_row_gets_a_row_as_wide_as_itself():
    assert pack_rows([100, 3, 4], 64) == [[0], [2, 1]]  # it fills its own row
    batch = pack([list(range(1, 101)), [1, 2, 3]], 64)
    assert (batch.rows, batch.width) == (2, 104)  # 100 rounded up to a multiple of 8
    assert batch.tokens == 103  # the dense layers see no padding at all


def test_positions_restart_per_sentence_and_first_tokens_point_at_each_start():
    sequences = [[101, 7, 8, 102], [101, 9, 102], [101, 5, 6, 7, 8, 102]]
    batch = pack(sequences, 16)
    assert batch.rows == 1 and batch.width % WIDTH_MULTIPLE == 0
    for item, seq in enumerate(sequences):
        start = int(batch.first_token[item])
        assert batch.ids[start : start + len(seq)].tolist() == seq
        assert batch.positions[start : start + len(seq)].tolist() == list(range(len(seq)))


def test_roberta_positions_start_after_the_padding_index():
    batch = pack([[0, 5, 2], [0, 2]], 64, position_offset=2)
    start = int(batch.first_token[0])
    assert batch.positions[start : start + 3].tolist() == [2, 3, 4]


@pytest.mark.parametrize("seed", range(20))
def test_the_two_views_name_the_same_tokens(seed):
    """Tokens end to end and the rows are one batch: every token has exactly one slot and
    back, padding slots point one past the last token, and a gather into the rows followed
    by a gather back is the identity (what the packed model does around attention)."""
    rng = np.random.default_rng(seed)
    lengths = [int(n) for n in rng.integers(1, 90, size=rng.integers(1, 30))]
    sequences = [rng.integers(1000, 2000, size=n).tolist() for n in lengths]
    batch = pack(sequences, 64)
    assert batch.tokens == sum(lengths)
    assert batch.slots.shape == (batch.rows * batch.width,)
    assert (batch.slots[batch.token_slot] == np.arange(batch.tokens)).all()
    padding = np.ones(batch.slots.shape, dtype=bool)
    padding[batch.token_slot] = False
    assert (batch.slots[padding] == batch.tokens).all()
    hidden = rng.normal(size=(batch.tokens, 4))
    rows = np.vstack([hidden, np.zeros((1, 4))])[batch.slots]
    np.testing.assert_array_equal(rows[batch.token_slot], hidden)
    for item, seq in enumerate(sequences):  # a sentence's tokens are one run in its row
        first = int(batch.first_token[item])
        assert batch.ids[first : first + len(seq)].tolist() == seq
        slots = batch.token_slot[first : first + len(seq)]
        assert (np.diff(slots) == 1).all() and slots[0] // batch.width == slots[-1] // batch.width


@pytest.mark.parametrize("seed", range(10))
def test_attention_through_the_bias_equals_each_sentence_alone(seed):
    """The bias is the whole trick: softmax over a packed row with it must give, for every
    real token, exactly the attention over its own sentence; no token sees a neighbour or
    padding, and padding slots produce finite values (no softmax over nothing)."""
    rng = np.random.default_rng(seed)
    lengths = [int(n) for n in rng.integers(1, 30, size=rng.integers(1, 12))]
    sequences = [list(range(1, n + 1)) for n in lengths]
    batch = pack(sequences, 32)
    dim = 8
    q, k, v = (rng.normal(size=(batch.rows, batch.width, dim)) for _ in range(3))
    flat = batch.token_slot[batch.first_token]
    for row in range(batch.rows):
        out = _attention_with_bias(q[row], k[row], v[row], batch.bias[row, 0])
        assert np.isfinite(out).all()
        for item, n in enumerate(lengths):
            r, start = divmod(int(flat[item]), batch.width)
            if r != row:
                continue
            span = slice(start, start + n)
            alone = _attention_alone(q[row, span], k[row, span], v[row, span])
            np.testing.assert_allclose(out[span], alone, rtol=1e-10, atol=1e-12)


def test_unpad_recovers_what_pad_batch_padded():
    sequences = [[101, 4, 5, 102], [101, 102], [101, 9, 9, 9, 9, 102]]
    ids, mask = pad_batch(sequences, pad_id=0)
    assert [s.tolist() for s in unpad(ids, mask)] == sequences


def test_nothing_or_an_empty_sentence_is_refused():
    with pytest.raises(ValueError):
        pack([], 64)
    with pytest.raises(ValueError):
        pack([[1, 2], []], 64)


def test_token_buckets_are_few_and_add_little():
    """oneDNN builds kernels per token count: the buckets must be few (the primitive cache
    holds 1,024, four products per count), never smaller than the tokens, and add at most
    15 tokens up to 512 and less than 1/16 of the count past it."""
    buckets = [token_bucket(n) for n in range(1, 4097)]
    assert all(b >= n for n, b in zip(range(1, 4097), buckets, strict=True))
    assert buckets == sorted(buckets)  # more tokens never get a smaller bucket
    assert len(set(buckets)) <= 80
    for n, b in zip(range(1, 4097), buckets, strict=True):
        assert b - n < (16 if n <= 512 else n / 16), (n, b)
        assert token_bucket(b) == b  # a bucket is its own bucket
    assert [token_bucket(n) for n in (1, 16, 17, 440, 513, 1700)] == [16, 16, 32, 448, 544, 1728]
    assert token_bucket(0) == 0


@pytest.mark.parametrize("seed", range(20))
def test_filler_tokens_are_computed_and_read_by_nothing(seed):
    """Filled up to its bucket, a batch keeps its real tokens first and exactly as without
    filler; the filler is named by no slot and by no item, points at a valid slot, and so
    cannot change what any real token attends to or what any item's logits read."""
    rng = np.random.default_rng(seed)
    lengths = [int(n) for n in rng.integers(1, 90, size=rng.integers(1, 30))]
    sequences = [rng.integers(1000, 2000, size=n).tolist() for n in lengths]
    plain = pack(sequences, 64, position_offset=2)
    filled = pack(sequences, 64, position_offset=2, fill_to_bucket=True)
    real = sum(lengths)
    assert filled.tokens == token_bucket(real) and filled.real_tokens == real
    assert filled.filler == filled.tokens - real and plain.filler == 0
    for name in ("ids", "positions", "token_slot"):
        np.testing.assert_array_equal(getattr(filled, name)[:real], getattr(plain, name))
    np.testing.assert_array_equal(filled.first_token, plain.first_token)
    np.testing.assert_array_equal(filled.bias, plain.bias)
    assert (filled.slots[filled.slots < real] == plain.slots[plain.slots < real]).all()
    assert (filled.slots[plain.slots == real] == filled.tokens).all()  # padding: past all
    assert not np.isin(np.arange(real, filled.tokens), filled.slots).any()
    assert (filled.ids[real:] == 0).all() and (filled.positions[real:] == 2).all()
    assert (filled.token_slot[real:] < filled.rows * filled.width).all()
    hidden = rng.normal(size=(filled.tokens, 4))
    rows = np.vstack([hidden, np.zeros((1, 4))])[filled.slots]
    np.testing.assert_array_equal(rows[filled.token_slot[:real]], hidden[:real])
