"""Dynamic batching rules: concurrent submissions share passes, bounded by size and delay."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

from modeldeploy.serving.batcher import BatchingConfig, DynamicBatcher
from modeldeploy.serving.errors import Overloaded


def _fake_logits(calls: list[tuple[int, int]]):
    def logits(ids: np.ndarray, mask: np.ndarray) -> np.ndarray:
        calls.append(ids.shape)
        # logit 0 = number of real tokens, so each row is traceable to its input
        return np.stack([mask.sum(1).astype(float), np.zeros(len(ids))], axis=1)

    return logits


async def _submit_many(batcher: DynamicBatcher, sizes: list[int]) -> list[np.ndarray]:
    return await asyncio.gather(*(batcher.submit([[1] * n]) for n in sizes))


def test_concurrent_requests_share_one_pass_padded_to_the_longest():
    calls: list[tuple[int, int]] = []
    batches: list[int] = []
    batcher = DynamicBatcher(
        _fake_logits(calls), 0, BatchingConfig(max_batch_size=8, max_delay_s=0.05), batches.append
    )
    results = asyncio.run(_submit_many(batcher, [3, 5, 2]))
    assert calls == [(3, 5)] and batches == [3]
    assert [r[0, 0] for r in results] == [3, 5, 2]  # each caller gets its own row


def test_max_batch_size_splits_passes():
    calls: list[tuple[int, int]] = []
    batcher = DynamicBatcher(
        _fake_logits(calls), 0, BatchingConfig(max_batch_size=2, max_delay_s=0.05)
    )
    asyncio.run(_submit_many(batcher, [1, 1, 1, 1, 1]))
    assert [c[0] for c in calls] == [2, 2, 1]


def test_zero_delay_does_not_wait_for_company():
    calls: list[tuple[int, int]] = []
    batcher = DynamicBatcher(
        _fake_logits(calls), 0, BatchingConfig(max_batch_size=8, max_delay_s=0.0)
    )

    async def sequential() -> None:
        for _ in range(3):
            await batcher.submit([[1, 2]])

    asyncio.run(sequential())
    assert [c[0] for c in calls] == [1, 1, 1]


def test_a_failing_pass_fails_its_requests_and_the_worker_survives():
    state = {"fail": True}

    def logits(ids: np.ndarray, mask: np.ndarray) -> np.ndarray:
        if state["fail"]:
            state["fail"] = False
            raise RuntimeError("boom")
        return np.zeros((len(ids), 2))

    batcher = DynamicBatcher(logits, 0, BatchingConfig(max_delay_s=0.0))

    async def run() -> np.ndarray:
        with pytest.raises(RuntimeError, match="boom"):
            await batcher.submit([[1]])
        return await batcher.submit([[1]])

    assert asyncio.run(run()).shape == (1, 2)


def test_full_queue_is_overloaded():
    batcher = DynamicBatcher(lambda i, m: np.zeros((len(i), 2)), 0, BatchingConfig(max_queue=2))
    with pytest.raises(Overloaded):
        asyncio.run(batcher.submit([[1], [1], [1]]))
