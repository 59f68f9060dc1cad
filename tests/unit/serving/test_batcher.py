"""Dynamic batching rules: shared passes, length-aware splits, tokenizing off the loop, shedding."""

from __future__ import annotations

import asyncio
import itertools
import threading
import time
from dataclasses import replace

import numpy as np
import pytest

from modeldeploy.serving.batcher import BatchingConfig, DynamicBatcher, plan_passes
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


def test_each_pass_reports_the_time_of_the_model_call_alone():
    """``on_pass`` gets one wall time per pass, and it covers the model call: a pass that
    sleeps 30 ms reports at least that, and the wait for company is not counted."""

    def slow_logits(ids: np.ndarray, mask: np.ndarray) -> np.ndarray:
        time.sleep(0.03)
        return np.zeros((len(ids), 2))

    timed: list[float] = []
    rows: list[int] = []
    batcher = DynamicBatcher(
        slow_logits,
        0,
        BatchingConfig(max_batch_size=2, max_delay_s=0.2),
        on_batch=rows.append,
        on_pass=timed.append,
    )
    asyncio.run(_submit_many(batcher, [1, 1, 1]))
    assert rows == [2, 1] and len(timed) == 2
    assert all(0.03 <= seconds < 0.2 for seconds in timed)


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


def test_overload_sheds_at_once_and_counts_it():
    shed: list[int] = []
    batcher = DynamicBatcher(
        lambda i, m: np.zeros((len(i), 2)),
        0,
        BatchingConfig(max_batch_size=2),
        on_shed=lambda: shed.append(1),
    )
    assert batcher.config.queue_limit() == 8  # 4 x max_batch_size by default

    async def run() -> list[object]:
        return await asyncio.gather(
            *(batcher.submit([[1]] * 3) for _ in range(4)), return_exceptions=True
        )

    outcomes = asyncio.run(run())
    refused = [o for o in outcomes if isinstance(o, Overloaded)]
    assert len(refused) == 2 and len(shed) == 2  # 3 + 3 items fit in 8, the next two do not
    assert all(isinstance(o, np.ndarray) and o.shape == (3, 2) for o in outcomes[:2])


class _Encoded:
    def __init__(self, ids: list[int]) -> None:
        self.ids = ids


def test_texts_are_tokenized_in_the_inference_thread_and_bad_input_fails_only_its_request():
    threads: list[str] = []

    def encode(texts):
        threads.append(threading.current_thread().name)
        if "bad" in texts:
            raise ValueError("cannot tokenize")
        return [_Encoded([1] * len(t)) for t in texts]

    calls: list[tuple[int, int]] = []
    batcher = DynamicBatcher(
        _fake_logits(calls), 0, BatchingConfig(max_delay_s=0.05), encode=encode
    )

    async def run() -> list[object]:
        return await asyncio.gather(
            batcher.submit_texts(["abc", "a"]),
            batcher.submit_texts(["bad"]),
            batcher.submit_texts(["abcde"]),
            return_exceptions=True,
        )

    good, bad, other = asyncio.run(run())
    assert isinstance(bad, ValueError)
    encoded, logits = good
    assert [len(e.ids) for e in encoded] == [3, 1] and list(logits[:, 0]) == [3, 1]
    assert other[1][0, 0] == 5
    assert threads and all(name.startswith("inference") for name in threads)
    assert threading.current_thread().name not in threads


def test_finish_runs_once_per_batch_in_the_inference_thread_and_splits_back_per_request():
    """With ``finish`` every request gets its own rows' results, in order, from one call over
    the whole batch; a request whose pass failed gets the error, not results."""
    finished: list[tuple[str, int]] = []

    def finish(logits: np.ndarray) -> list[str]:
        finished.append((threading.current_thread().name, len(logits)))
        return [f"row of {int(tokens)} tokens" for tokens in logits[:, 0]]

    def logits(ids: np.ndarray, mask: np.ndarray) -> np.ndarray:
        if (mask.sum(1) == 7).any():
            raise RuntimeError("this pass failed")
        return np.stack([mask.sum(1).astype(float), np.zeros(len(ids))], axis=1)

    config = BatchingConfig(max_delay_s=0.05, pass_overhead_tokens=10_000)  # one pass each
    batcher = DynamicBatcher(logits, 0, config, finish=finish)

    async def waves() -> tuple[object, list[object]]:
        lone = await batcher.submit([[1], [1] * 2, [1] * 3])
        rest = await asyncio.gather(
            batcher.submit([[1] * 4]), batcher.submit([[1] * 5, [1] * 6]), return_exceptions=True
        )
        return lone, rest

    lone, (four, five_six) = asyncio.run(waves())
    assert lone == ["row of 1 tokens", "row of 2 tokens", "row of 3 tokens"]
    assert four == ["row of 4 tokens"]
    assert five_six == ["row of 5 tokens", "row of 6 tokens"]
    assert [n for _, n in finished] == [3, 3]  # once per batch, over all its rows
    assert all(name.startswith("inference") for name, _ in finished)

    batcher.close()
    finished.clear()
    split = DynamicBatcher(logits, 0, replace(config, pass_overhead_tokens=0), finish=finish)

    async def failing() -> list[object]:  # one pass per length: only the 7-token one fails
        return await asyncio.gather(
            split.submit([[1] * 7]), split.submit([[1] * 2]), return_exceptions=True
        )

    failed, fine = asyncio.run(failing())
    assert isinstance(failed, RuntimeError)
    assert fine == ["row of 2 tokens"]
    assert [n for _, n in finished] == [1]  # only the rows that were computed
    split.close()


def test_a_batch_is_split_by_length_when_that_saves_padded_work():
    calls: list[tuple[int, int]] = []
    config = BatchingConfig(max_batch_size=16, max_delay_s=0.05, pass_overhead_tokens=16)
    batcher = DynamicBatcher(_fake_logits(calls), 0, config)
    results = asyncio.run(_submit_many(batcher, [60, 4, 5, 62, 3, 4]))
    # one pass would pad 6 rows to 62 (372 slots); two passes cost 16 + 4*5 + 16 + 2*62
    assert sorted(calls) == [(2, 62), (4, 5)]
    assert [r[0, 0] for r in results] == [60, 4, 5, 62, 3, 4]  # rows return to their owners


@pytest.mark.parametrize("seed", range(20))
def test_plan_passes_is_optimal_over_contiguous_splits(seed):
    rng = np.random.default_rng(seed)
    lengths = list(rng.integers(1, 80, size=int(rng.integers(1, 9))))
    max_rows, overhead = int(rng.integers(1, 5)), int(rng.integers(0, 100))
    plan = plan_passes(lengths, max_rows, overhead)
    assert sorted(i for p in plan for i in p) == list(range(len(lengths)))
    assert all(len(p) <= max_rows for p in plan)

    def cost(passes) -> int:
        return sum(overhead + len(p) * max(lengths[i] for i in p) for p in passes)

    order = sorted(range(len(lengths)), key=lambda i: lengths[i])
    n = len(order)
    best = min(
        cost([order[a:b] for a, b in zip((0, *cuts), (*cuts, n), strict=True)])
        for k in range(n)
        for cuts in itertools.combinations(range(1, n), k)
        if all(b - a <= max_rows for a, b in zip((0, *cuts), (*cuts, n), strict=True))
    )
    assert cost(plan) == best


def test_only_a_saturated_batcher_waits_for_company():
    calls: list[tuple[int, int]] = []
    batcher = DynamicBatcher(
        _fake_logits(calls), 0, BatchingConfig(max_batch_size=3, max_delay_s=0.5)
    )

    async def late() -> np.ndarray:
        await asyncio.sleep(0.05)
        return await batcher.submit([[1]])

    async def run() -> tuple[float, float]:
        started = time.perf_counter()
        await batcher.submit([[1]])  # idle: runs at once, not after 0.5 s
        alone = time.perf_counter() - started
        # not saturated (last batch 1 < 3): two that arrived together run at once, and a
        # late third is not waited for
        started = time.perf_counter()
        await asyncio.gather(batcher.submit([[1]]), batcher.submit([[1]]), late())
        unsaturated = time.perf_counter() - started
        await _submit_many(batcher, [1, 1, 1])  # a full batch: the server is saturated
        # saturated: the worker waits (up to 0.5 s) for the late third one
        await asyncio.gather(batcher.submit([[1]]), batcher.submit([[1]]), late())
        return alone, unsaturated

    alone, unsaturated = asyncio.run(run())
    assert alone < 0.25 and unsaturated < 0.25
    assert [c[0] for c in calls] == [1, 2, 1, 3, 3]


def test_closed_loop_clients_fill_one_pass_instead_of_alternating_halves():
    """8 clients that resend as soon as they are answered, batches of up to 32: each pass
    should hold all 8 (the worker waits for those just answered), not 4 and 4 in turn."""
    batches: list[int] = []

    def slow_logits(ids: np.ndarray, mask: np.ndarray) -> np.ndarray:
        time.sleep(0.01)  # a forward pass; arrivals queue meanwhile
        return np.zeros((len(ids), 2))

    config = BatchingConfig(max_batch_size=32, max_delay_s=0.2, learn_pass_cost=False)
    batcher = DynamicBatcher(slow_logits, 0, config, batches.append)

    async def client(k: int) -> None:
        await asyncio.sleep(0.002 * k)  # staggered start: the first passes are partial
        for _ in range(10):
            await batcher.submit([[1, 2, 3]])
            await asyncio.sleep(0.001)  # the answer travels back, the next request comes

    async def run() -> None:
        await asyncio.gather(*(client(k) for k in range(8)))

    asyncio.run(run())
    assert sum(batches) == 80
    # the staggered start and the staggered finish aside, every pass holds all 8
    assert batches[2:-2] == [8] * (len(batches) - 4), batches


def test_a_lone_request_is_not_delayed_once_the_load_has_gone():
    config = BatchingConfig(max_batch_size=32, max_delay_s=0.3, learn_pass_cost=False)
    batcher = DynamicBatcher(lambda i, m: np.zeros((len(i), 2)), 0, config)

    async def run() -> list[float]:
        await asyncio.gather(*(batcher.submit([[1]]) for _ in range(8)))  # a burst of 8
        took = []
        for _ in range(3):  # then one at a time: at most the first waits for company
            started = time.perf_counter()
            await batcher.submit([[1]])
            took.append(time.perf_counter() - started)
        return took

    took = asyncio.run(run())
    assert took[1] < 0.15 and took[2] < 0.15, took
    assert batcher.wait_target() == 1


def test_a_few_overlapping_requests_never_make_the_worker_wait():
    batcher = DynamicBatcher(lambda i, m: np.zeros((len(i), 2)), 0, BatchingConfig())
    batcher._peak_in_flight = 3  # below MIN_WAIT_IN_FLIGHT: chance overlap, not load
    assert batcher.wait_target() == 1
    batcher._peak_in_flight = 16
    assert batcher.wait_target() == 16
    batcher._peak_in_flight = 100
    assert batcher.wait_target() == 32  # never more than a batch


def test_every_pass_is_timed_into_the_cost_model_and_the_plan_follows_it():
    seen: list[tuple[int, int]] = []
    config = BatchingConfig(max_batch_size=16, max_delay_s=0.05, pass_overhead_tokens=16)
    batcher = DynamicBatcher(lambda i, m: np.zeros((len(i), 2)), 0, config)
    observe = batcher.pass_cost.observe
    batcher.pass_cost.observe = lambda r, w, s: (seen.append((r, w)), observe(r, w, s))[1]
    calls: list[tuple[int, int]] = []
    batcher._logits = _fake_logits(calls)
    asyncio.run(_submit_many(batcher, [60, 4, 5, 62, 3, 4]))
    assert sorted(seen) == sorted(calls) == [(2, 62), (4, 5)]  # the prior (16) splits
    # A runtime whose passes cost mostly a fixed amount (bf16 on AMX): learned, no split.
    fresh = DynamicBatcher(_fake_logits(calls := []), 0, config)
    for rows, width in itertools.product((1, 4, 8, 16), (8, 32, 64)):
        for _ in range(4):
            fresh.pass_cost.observe(rows, width, 0.020 + 1e-6 * rows * width)
    assert fresh.overhead_tokens() > 10_000 or fresh.overhead_tokens() == 8192
    asyncio.run(_submit_many(fresh, [60, 4, 5, 62, 3, 4]))
    assert calls == [(6, 62)]


def test_the_configured_overhead_holds_when_learning_is_off():
    config = BatchingConfig(pass_overhead_tokens=50, learn_pass_cost=False)
    batcher = DynamicBatcher(lambda i, m: np.zeros((len(i), 2)), 0, config)
    for rows in (1, 2, 4, 8, 16, 32) * 10:
        batcher.pass_cost.observe(rows, 20, 0.02 + 1e-5 * rows * 20)
    assert batcher.overhead_tokens() == 50


def test_the_wait_never_outlasts_the_fixed_cost_of_a_pass_once_learned():
    config = BatchingConfig(max_batch_size=32, max_delay_s=0.5)

    def fp32_like(ids: np.ndarray, mask: np.ndarray) -> np.ndarray:
        # Passes run here take what the learned line says: an instant fake pass would be
        # an outlier of enormous relative weight that could flatten the fit (this test
        # once failed that way on a busy machine).
        time.sleep(0.001 + 2e-5 * ids.size)
        return np.zeros((len(ids), 2))

    batcher = DynamicBatcher(fp32_like, 0, config)
    assert batcher.wait_bound() == 0.5  # nothing learned yet: the configured bound
    for rows, width in itertools.product((1, 4, 8, 16), (8, 32, 64)):
        for _ in range(4):  # fp32-like: 1 ms fixed, the rest per token slot
            batcher.pass_cost.observe(rows, width, 0.001 + 2e-5 * rows * width)
    assert batcher.wait_bound() == pytest.approx(0.001, rel=0.01)

    async def run() -> float:
        await asyncio.gather(*(batcher.submit([[1]]) for _ in range(8)))  # saturated
        started = time.perf_counter()
        await batcher.submit([[1]])  # 7 more are expected, but not worth 0.5 s
        return time.perf_counter() - started

    assert asyncio.run(run()) < 0.25
    off = DynamicBatcher(batcher._logits, 0, replace(config, learn_pass_cost=False))
    off.pass_cost = batcher.pass_cost
    assert off.wait_bound() == 0.5


def test_a_packing_backend_gets_one_pass_whatever_the_length_mix():
    """Split by length, a short and a long sentence cost two passes; a backend that packs
    computes no padding, so one pass is cheaper."""
    mix = [2, 60, 3, 58, 4]
    padded_calls: list[tuple[int, int]] = []
    config = BatchingConfig(max_batch_size=8, max_delay_s=0.05, pass_overhead_tokens=4)
    padded = DynamicBatcher(_fake_logits(padded_calls), 0, config)
    asyncio.run(_submit_many(padded, mix))
    assert len(padded_calls) == 2  # the short ones and the long ones apart
    packed_calls: list[tuple[int, int]] = []
    packed = DynamicBatcher(_fake_logits(packed_calls), 0, config, packs=True)
    results = asyncio.run(_submit_many(packed, mix))
    assert packed_calls == [(5, 60)]
    assert [r[0, 0] for r in results] == mix  # every caller still gets its own row
    assert packed.plan([5] * 20) == [list(range(8)), list(range(8, 16)), list(range(16, 20))]
    assert packed.pass_cost.passes == 1
