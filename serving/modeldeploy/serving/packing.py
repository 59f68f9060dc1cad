"""Sequence packing: several short sentences share one row, so a pass computes no padding.

A padded pass costs ``rows x longest`` token slots: in a random mix of sentences (arrival
order at concurrency 16 on the Rotten Tomatoes test split: 27 tokens on average, 63 at
most) more than half of them are padding, which is why a server could never approach the
in-process figure measured on length-sorted batches. Packing lays the sentences of a pass
end to end into rows of ``row_tokens`` (first fit, longest first), and an attention bias
keeps each sentence to its own tokens: every sentence attends exactly as it would alone,
with its own position ids from 0, so the logits are the padded ones (checked when the
packed model is built, :mod:`backends.packed_model`).

The dense layers (the query/key/value, output and feed-forward products, nearly all the
work) run on the tokens laid end to end, with no padding at all; only attention gathers
them into the rows and back (:class:`PackedBatch` carries both views). Rows stay short
(``row_tokens``, at least the longest sentence): attention costs the square of the row's
width. On the 854 test sentences in batches of 16 in arrival order, the dense layers see
23,244 tokens, fewer than length-sorted padded batches of 16 (23,658 slots); when they
also ran on the rows, as the first version of this module did, they saw 25,728 slots (the
rows' unused tails), which cost 8% of the throughput of ONNX Runtime on AVX2.

Measured in process with the rows-only version (MiniLM-L6, bf16 on AMX, 2 threads,
batches of 16 in arrival order): 285 sentences/s padded, 510-537 packed into rows of 64
tokens, 291-321 in one row of all 16. This is the "padding-free" batching that
text-embedding servers use with variable-length attention kernels, done with gathers and
a block-diagonal bias that any runtime (TorchScript, ONNX Runtime) accepts.

**Token buckets.** oneDNN (torch's CPU kernels: bf16 on AMX, and fp32 on AVX-512) builds a
kernel for every new shape of a product, and the dense layers' shape is the pass's token
count, which in a random mix of sentences takes nearly any value: a server kept meeting
token counts it had no kernel for yet (oneDNN's primitive cache holds 1,024 by default,
and each count needs one per product). Measured in process on AMX (bf16, batches of 16 from a
shuffled order): 455-534 sentences/s on token counts not seen before, 584-677 on the same
batches again; the server's passes took 32 ms where the in-process figure is 23. With
``fill_to_bucket`` the tokens are filled up to :func:`token_bucket` (a multiple of 16 up to
512 tokens, then 16 steps per doubling: 80 counts below 4,096; past 512 tokens less than
1/16 of them added, 2% on average) with filler tokens that the dense layers compute and
nothing reads: no row's slot names them, and no item's first token is one.

Pure numpy; the backend turns the arrays into tensors.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

WIDTH_MULTIPLE = 8
"""Row widths are rounded up to this: fewer distinct shapes, so oneDNN and ONNX Runtime
reuse the kernels they created for a shape instead of building new ones."""
BLOCKED = float(np.finfo(np.float32).min)
TOKEN_MULTIPLE = 16
"""The smallest step between two token buckets (:func:`token_bucket`)."""
BUCKETS_PER_DOUBLING = 32
"""The step is 1/32 of the power of two at or above the count: past 512 tokens it grows
with the count (16 buckets between two powers of two)."""


def token_bucket(tokens: int) -> int:
    """The token count a pass of ``tokens`` real tokens is computed on with filler:
    rounded up to a multiple of 16, or past 512 of 1/32 of the power of two at or above
    it (the module docstring says why)."""
    if tokens <= 0:
        return 0
    doubling = 1 << (tokens - 1).bit_length()
    step = max(TOKEN_MULTIPLE, doubling // BUCKETS_PER_DOUBLING)
    return -(-tokens // step) * step


@dataclass(frozen=True)
class PackedBatch:
    """One packed pass, in two views of the same tokens.

    - Tokens end to end (what every dense layer sees, no padding at all): ``ids`` and
      ``positions`` (tokens,), row by row, each sentence's tokens together.
      With filler (``pack(..., fill_to_bucket=True)``), ``filler`` tokens follow the real
      ones: ids 0 at the first position, each pointing back at slot 0, named by no slot.
    - Rows (what attention sees): ``bias`` (rows, 1, width, width) keeps each sentence to
      its own tokens; ``slots`` (rows x width,) names the token in each slot of the rows,
      or ``tokens`` (one past the last) for a padding slot; ``token_slot`` (tokens,) is each
      token's slot, the way back.

    ``first_token`` (items,): each item's first token, an index into the tokens, in the
    order the items were given.
    """

    ids: np.ndarray
    positions: np.ndarray
    bias: np.ndarray
    slots: np.ndarray
    token_slot: np.ndarray
    first_token: np.ndarray
    filler: int = 0

    @property
    def rows(self) -> int:
        return int(self.bias.shape[0])

    @property
    def width(self) -> int:
        return int(self.bias.shape[-1])

    @property
    def tokens(self) -> int:
        """Tokens the dense layers compute: the real ones and any filler."""
        return int(self.ids.shape[0])

    @property
    def real_tokens(self) -> int:
        return self.tokens - self.filler

    def arrays(self) -> tuple[np.ndarray, ...]:
        """The packed model's inputs, in :data:`INPUT_NAMES` order."""
        return (self.ids, self.positions, self.bias, self.slots, self.token_slot, self.first_token)


INPUT_NAMES = ("ids", "positions", "bias", "slots", "token_slot", "first_token")
"""The packed model's inputs (:mod:`backends.packed_model`), as the ONNX graph names them."""


def pack_rows(lengths: Sequence[int], row_tokens: int) -> list[list[int]]:
    """Item indices per row: first fit, longest first, rows of at most
    ``max(row_tokens, longest)`` tokens. Every item is in exactly one row."""
    if not lengths:
        return []
    capacity = max(row_tokens, max(lengths))
    rows: list[list[int]] = []
    room: list[int] = []
    for item in sorted(range(len(lengths)), key=lambda i: -lengths[i]):
        for row, left in enumerate(room):
            if lengths[item] <= left:
                rows[row].append(item)
                room[row] -= lengths[item]
                break
        else:
            rows.append([item])
            room.append(capacity - lengths[item])
    return rows


def pack(
    sequences: Sequence[Sequence[int] | np.ndarray],
    row_tokens: int,
    position_offset: int = 0,
    fill_to_bucket: bool = False,
) -> PackedBatch:
    """Lay ``sequences`` into packed rows; ``position_offset`` is the family's first
    position id (0 for BERT and DistilBERT, ``pad_token_id + 1`` for RoBERTa);
    ``fill_to_bucket`` adds filler tokens up to :func:`token_bucket` of the real ones."""
    if not sequences or any(len(s) == 0 for s in sequences):
        raise ValueError("packing needs at least one sequence and no empty ones")
    lengths = [len(s) for s in sequences]
    rows = pack_rows(lengths, row_tokens)
    used = max(sum(lengths[i] for i in row) for row in rows)
    width = -(-used // WIDTH_MULTIPLE) * WIDTH_MULTIPLE
    real = sum(lengths)
    tokens = token_bucket(real) if fill_to_bucket else real
    ids = np.zeros(tokens, dtype=np.int64)
    positions = np.full(tokens, position_offset, dtype=np.int64)
    slots = np.full(len(rows) * width, tokens, dtype=np.int64)  # padding: past every token
    token_slot = np.zeros(tokens, dtype=np.int64)
    segment = np.full((len(rows), width), -1, dtype=np.int64)
    first_token = np.zeros(len(sequences), dtype=np.int64)
    token = 0
    for r, row in enumerate(rows):
        column = 0
        for k, item in enumerate(row):
            n = lengths[item]
            ids[token : token + n] = sequences[item]
            positions[token : token + n] = np.arange(position_offset, position_offset + n)
            slot = r * width + column
            token_slot[token : token + n] = np.arange(slot, slot + n)
            slots[slot : slot + n] = np.arange(token, token + n)
            segment[r, column : column + n] = k
            first_token[item] = token
            token += n
            column += n
    same = segment[:, :, None] == segment[:, None, :]
    # A padding slot (segment -1) attends only to itself: no softmax over nothing (NaN),
    # and no real token ever attends to it.
    allowed = (same & (segment[:, :, None] >= 0)) | np.eye(width, dtype=bool)[None]
    bias = np.where(allowed, 0.0, BLOCKED).astype(np.float32)[:, None, :, :]
    return PackedBatch(ids, positions, bias, slots, token_slot, first_token, tokens - real)


def unpad(input_ids: np.ndarray, attention_mask: np.ndarray) -> list[np.ndarray]:
    """The sequences of a right-padded batch (what :func:`codecs.pad_batch` builds)."""
    lengths = attention_mask.sum(axis=1)
    return [input_ids[row, : int(n)] for row, n in enumerate(lengths)]
