"""Dynamic batching that keeps the event loop free and the cores on the model.

Requests (a request's texts, or already tokenized ids) wait in a bounded queue. One
worker coroutine takes what is waiting and hands the whole batch to a single inference
thread, which does all the CPU work there, off the event loop:

- **tokenization** of every text in the batch (the loop only parses and answers HTTP);
- **length-aware passes**: the batch's sequences are sorted by length and split into
  forward passes where that saves padded work. :func:`plan_passes` minimises
  ``passes x overhead + sum(rows x longest)`` exactly (a small dynamic programme), so
  short sentences never pay for the longest one in a random mix. The overhead of a pass
  is the runtime's own, learned from the passes this server runs (:mod:`passcost`): on
  bf16/AMX one pass of 16 rows costs little more than one of 8, so splitting loses there;
- the forward passes themselves, one at a time (they never compete for the cores).

A backend that packs (``packs=True``: the torch runtime on CPU, :mod:`packing`) computes
no padding whatever the mix, so splitting by length would only add passes: there every
batch is one pass (up to ``max_batch_size`` items), and the cost model learns the cost
per real token.

Waiting for company only when it is expected: an idle predictor runs a lone request at
once (no added latency at concurrency 1). Under load the worker waits, up to
``max_delay_s``, until the queue holds as many items as were in flight (admitted, not yet
answered) at the busiest moment since the last pass started: closed-loop clients answered
by that pass are about to send again, and waiting for them lets them join the next pass
instead of the load splitting into two alternating half-size passes (measured at
concurrency 16: 5.6-8 rows per pass without this). Below ``MIN_WAIT_IN_FLIGHT`` items in
flight it never waits: a few overlapping requests at a low rate are chance, not load, and
waiting would only add latency (a canary at 20 req/s once showed a P99 1.7x its busier
stable's for that reason alone). Nor does it wait longer than the learned fixed cost of a
pass (:meth:`DynamicBatcher.wait_bound`): that is all a fuller pass can save.

Overload sheds instead of slowing everyone: past ``queue_limit()`` waiting items a
request is refused at once with :class:`Overloaded` (HTTP 503 with ``Retry-After``),
so the requests already admitted keep their latency and throughput does not collapse.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np

from modeldeploy.serving.codecs import pad_batch
from modeldeploy.serving.errors import Overloaded
from modeldeploy.serving.passcost import PassCostModel

LogitsFn = Callable[[np.ndarray, np.ndarray], np.ndarray]
EncodeFn = Callable[[Sequence[str]], list[Any]]  # texts -> objects with ``.ids``
FinishFn = Callable[[np.ndarray], Sequence[Any]]
"""Logits of every row a batch computed -> one result per row, run once per batch in the
inference thread (``DynamicBatcher(finish=...)``)."""
log = logging.getLogger(__name__)
MIN_WAIT_IN_FLIGHT = 4
COST_LOG_EVERY = 1024
"""Passes between two log lines of the learned pass cost (what the planner works with;
also logged after the first 64 and 256 passes)."""
"""Fewer items in flight than this (or than ``max_batch_size``) never make the worker wait."""


@dataclass(frozen=True)
class BatchingConfig:
    max_batch_size: int = 32
    max_delay_s: float = 0.005
    max_queue: int = 0  # waiting items; 0 = 4 x max_batch_size. Beyond it: shed (503)
    # One more forward pass costs about this many token slots: the prior, until the
    # runtime's own cost is learned from the passes served (``learn_pass_cost``).
    pass_overhead_tokens: int = 96
    learn_pass_cost: bool = True

    def queue_limit(self) -> int:
        return self.max_queue or 4 * self.max_batch_size


def plan_passes(lengths: Sequence[int], max_rows: int, overhead: int) -> list[list[int]]:
    """Split items (by index) into passes minimising ``overhead`` per pass + padded slots.

    Items are sorted by length; a pass is a contiguous run of at most ``max_rows`` of them
    and costs ``overhead + rows * longest``. Exact over all contiguous splits, O(n x max_rows).
    """
    order = sorted(range(len(lengths)), key=lambda i: lengths[i])
    n = len(order)
    best = [0] + [0] * n
    cut = [0] * (n + 1)
    for j in range(1, n + 1):
        longest = lengths[order[j - 1]]
        best[j], cut[j] = min(
            (best[i] + overhead + (j - i) * longest, i) for i in range(max(0, j - max_rows), j)
        )
    passes: list[list[int]] = []
    j = n
    while j > 0:
        passes.append(order[cut[j] : j])
        j = cut[j]
    return passes[::-1]


def plan_for(lengths: Sequence[int], max_rows: int, overhead: int, packs: bool) -> list[list[int]]:
    """The forward passes (item indices) for items of these lengths: by length
    (:func:`plan_passes`), or, for a backend that packs, in order, ``max_rows`` each."""
    if packs:
        return [
            list(range(i, min(i + max_rows, len(lengths))))
            for i in range(0, len(lengths), max_rows)
        ]
    return plan_passes(lengths, max_rows, overhead)


def observe_pass(cost: PassCostModel, mask: np.ndarray, seconds: float, packs: bool) -> None:
    """Feed one timed pass of this padded ``mask`` to ``cost``: its padded slots, or for a
    backend that packs what it computes, the real tokens."""
    if packs:
        cost.observe(1, int(mask.sum()), seconds)
    else:
        cost.observe(mask.shape[0], mask.shape[1], seconds)


@dataclass
class _Request:
    texts: Sequence[str] | None
    ids: Sequence[Sequence[int]] | None
    size: int
    future: asyncio.Future[tuple[list[Any] | None, Any]]


class DynamicBatcher:
    """Batches requests; returns each request's encodings (if it sent texts) and logits.

    With ``finish``, a request gets the list of its rows' ``finish`` results instead of its
    logits: ``finish`` runs once over the whole batch's logits in the inference thread, so
    work that numpy does for all rows in one call (softmax, argmax) is not done once per
    request on the event loop, whose time per request is time the next pass waits for.

    ``on_batch`` gets each pass's row count and ``on_pass`` its wall time (the model call
    alone), both in the inference thread.
    """

    def __init__(
        self,
        logits: LogitsFn,
        pad_id: int,
        config: BatchingConfig,
        on_batch: Callable[[int], None] | None = None,
        on_pass: Callable[[float], None] | None = None,
        encode: EncodeFn | None = None,
        on_shed: Callable[[], None] | None = None,
        packs: bool = False,
        finish: FinishFn | None = None,
    ) -> None:
        self._logits = logits
        self._finish = finish
        self.packs = packs
        self._pad_id = pad_id
        self.config = config
        self._on_batch = on_batch or (lambda _n: None)
        self._on_pass = on_pass or (lambda _s: None)
        self._on_shed = on_shed or (lambda: None)
        self._encode = encode
        self._pending: deque[_Request] = deque()
        self._pending_items = 0
        self._in_flight = 0  # items admitted and not yet answered
        self._peak_in_flight = 0  # the most in flight since the last pass was dispatched
        self.pass_cost = PassCostModel(config.pass_overhead_tokens)
        self._arrived: asyncio.Event | None = None
        self._worker: asyncio.Task[None] | None = None
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="inference")

    def _ensure_started(self) -> asyncio.Event:
        # Created lazily inside the serving loop: kserve runs its own asyncio.run().
        if self._arrived is None or self._worker is None or self._worker.done():
            self._arrived = asyncio.Event()
            self._pending.clear()
            self._pending_items = 0
            self._in_flight = self._peak_in_flight = 0
            self._worker = asyncio.get_running_loop().create_task(self._run())
        return self._arrived

    async def submit(self, sequences: Sequence[Sequence[int]]) -> Any:
        """Logits for token-id ``sequences`` (one request's items), batched with others
        (with ``finish``: the list of their rows' results)."""
        _, logits = await self._enqueue(None, sequences, len(sequences))
        return logits

    async def submit_texts(self, texts: Sequence[str]) -> tuple[list[Any], Any]:
        """Encodings and logits (or ``finish`` results) for ``texts``, tokenized in the
        inference thread.

        A tokenization error (bad input) fails this request only, with the encoder's error.
        """
        if self._encode is None:
            raise RuntimeError("this batcher was built without an encoder")
        encoded, logits = await self._enqueue(texts, None, len(texts))
        assert encoded is not None
        return encoded, logits

    async def _enqueue(
        self, texts: Sequence[str] | None, ids: Sequence[Sequence[int]] | None, size: int
    ) -> tuple[list[Any] | None, Any]:
        arrived = self._ensure_started()
        limit = self.config.queue_limit()
        if self._pending_items + size > limit:
            self._on_shed()
            raise Overloaded(f"inference queue is full ({limit} items waiting); retry shortly")
        future: asyncio.Future[tuple[list[Any] | None, Any]]
        future = asyncio.get_running_loop().create_future()
        self._pending.append(_Request(texts, ids, size, future))
        self._pending_items += size
        self._in_flight += size
        self._peak_in_flight = max(self._peak_in_flight, self._in_flight)
        arrived.set()
        return await future

    async def _collect(self) -> list[_Request]:
        assert self._arrived is not None
        arrived, loop = self._arrived, asyncio.get_running_loop()
        while not self._pending:
            arrived.clear()
            await arrived.wait()
        target = self.wait_target()
        deadline = loop.time() + self.wait_bound()
        while self._pending_items < target:
            remaining = deadline - loop.time()
            if remaining <= 0:
                break
            arrived.clear()
            try:
                await asyncio.wait_for(arrived.wait(), remaining)
            except TimeoutError:
                break
        batch = [self._pending.popleft()]  # at least one request, whatever its size
        items = batch[0].size
        while self._pending and items + self._pending[0].size <= self.config.max_batch_size:
            request = self._pending.popleft()
            batch.append(request)
            items += request.size
        self._pending_items -= items
        self._peak_in_flight = self._in_flight  # this batch and what still waits
        return batch

    def wait_target(self) -> int:
        """Items to wait for (up to ``max_delay_s``) before a pass: 1 means do not wait.

        The most items in flight since the last pass was dispatched, capped at
        ``max_batch_size``; 1 below ``MIN_WAIT_IN_FLIGHT`` (module docstring).
        """
        peak = min(self._peak_in_flight, self.config.max_batch_size)
        return peak if peak >= min(MIN_WAIT_IN_FLIGHT, self.config.max_batch_size) else 1

    def wait_bound(self) -> float:
        """The longest wait for company: ``max_delay_s``, and never longer than the fixed
        cost of a pass once that is learned (a wait that outlasts the pass it saves cannot
        pay for itself: fp32, whose passes cost little beyond their rows, waits less)."""
        fitted = self.pass_cost.fit() if self.config.learn_pass_cost else None
        if fitted is None:
            return self.config.max_delay_s
        return min(self.config.max_delay_s, max(0.0, fitted[0]))

    def overhead_tokens(self) -> int:
        """The per-pass overhead the planner uses now (learned, or the configured prior)."""
        if not self.config.learn_pass_cost:
            return self.config.pass_overhead_tokens
        return self.pass_cost.overhead_tokens()

    def plan(self, lengths: Sequence[int]) -> list[list[int]]:
        """This batcher's passes for items of these lengths (:func:`plan_for`)."""
        return plan_for(lengths, self.config.max_batch_size, self.overhead_tokens(), self.packs)

    def _process(self, batch: list[_Request]) -> list[Any]:
        """In the inference thread: tokenize, plan passes by length, run them."""
        outcomes: list[Any] = [None] * len(batch)
        encodings: list[list[Any] | None] = [None] * len(batch)
        sequences: list[Sequence[int]] = []
        owner: list[int] = []  # request index of each sequence
        for k, request in enumerate(batch):
            if request.texts is not None:
                assert self._encode is not None
                try:
                    encodings[k] = self._encode(request.texts)
                except Exception as exc:  # this request's bad input, not the batch's
                    outcomes[k] = exc
                    continue
                seqs: Sequence[Sequence[int]] = [e.ids for e in encodings[k] or []]
            else:
                seqs = request.ids or []
            sequences.extend(seqs)
            owner.extend([k] * len(seqs))
        rows: list[np.ndarray | None] = [None] * len(sequences)
        lengths = [len(s) for s in sequences]
        for group in self.plan(lengths):
            try:
                ids, mask = pad_batch([sequences[i] for i in group], self._pad_id)
                self._on_batch(len(group))
                started = time.perf_counter()
                out = self._logits(ids, mask)
                seconds = time.perf_counter() - started
                self._on_pass(seconds)
                observe_pass(self.pass_cost, mask, seconds, self.packs)
                passes = self.pass_cost.passes
                if passes in (64, 256) or passes % COST_LOG_EVERY == 0:
                    log.info("pass cost: %s", self.pass_cost.describe())
            except Exception as exc:  # a failed pass fails its requests, not the worker
                for i in group:
                    outcomes[owner[i]] = exc
                continue
            for i, row in zip(group, out, strict=True):
                rows[i] = row
        results: list[Any] = rows
        if self._finish is not None:
            computed = [(i, row) for i, row in enumerate(rows) if row is not None]
            results = [None] * len(rows)
            if computed:
                finished = self._finish(np.stack([row for _, row in computed]))
                for (i, _), result in zip(computed, finished, strict=True):
                    results[i] = result
        start = 0
        for k, request in enumerate(batch):
            count = len(encodings[k] or []) if request.texts is not None else request.size
            mine = results[start : start + count]
            start += count
            if outcomes[k] is None:  # every row of it was computed
                outcomes[k] = (encodings[k], mine if self._finish else np.stack(mine))
        return outcomes

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            collected = await self._collect()
            batch = [r for r in collected if not r.future.done()]  # gone: skip
            outcomes: list[Any] = []
            try:
                if batch:
                    outcomes = await loop.run_in_executor(self._executor, self._process, batch)
            except Exception as exc:
                outcomes = [exc] * len(batch)
            finally:  # answered (or gone): no longer in flight
                self._in_flight -= sum(r.size for r in collected)
            for request, outcome in zip(batch, outcomes, strict=True):
                if request.future.done():
                    continue
                if isinstance(outcome, BaseException):
                    request.future.set_exception(outcome)
                else:
                    request.future.set_result(outcome)

    def close(self) -> None:
        if self._worker is not None:
            self._worker.cancel()
        self._executor.shutdown(wait=False, cancel_futures=True)
