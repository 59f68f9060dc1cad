"""Dynamic batching: requests wait briefly in an asyncio queue and share a forward pass.

One worker coroutine takes the first waiting item, then keeps collecting until the
batch is full (``max_batch_size``) or the oldest item has waited ``max_delay_s``.
The batch is padded to its longest item and run in a single dedicated thread, so
the event loop keeps accepting requests while the model computes, and forward
passes never compete with each other for the cores.

Throughput on CPU comes mostly from this: under load each forward pass carries
many sentences for little more than the cost of one.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np

from modeldeploy.serving.codecs import pad_batch
from modeldeploy.serving.errors import Overloaded

LogitsFn = Callable[[np.ndarray, np.ndarray], np.ndarray]


@dataclass(frozen=True)
class BatchingConfig:
    max_batch_size: int = 32
    max_delay_s: float = 0.005
    max_queue: int = 4096  # items; beyond this, answer 503 rather than queue forever


@dataclass
class _Item:
    ids: Sequence[int]
    future: asyncio.Future[np.ndarray]


class DynamicBatcher:
    """Collects token-id sequences into batches and returns one logits row per sequence."""

    def __init__(
        self,
        logits: LogitsFn,
        pad_id: int,
        config: BatchingConfig,
        on_batch: Callable[[int], None] | None = None,
    ) -> None:
        self._logits = logits
        self._pad_id = pad_id
        self.config = config
        self._on_batch = on_batch or (lambda _n: None)
        self._queue: asyncio.Queue[_Item] | None = None
        self._worker: asyncio.Task[None] | None = None
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="inference")

    def _ensure_started(self) -> asyncio.Queue[_Item]:
        # Created lazily inside the serving loop: kserve runs its own asyncio.run().
        if self._queue is None or self._worker is None or self._worker.done():
            self._queue = asyncio.Queue()
            self._worker = asyncio.get_running_loop().create_task(self._run())
        return self._queue

    async def submit(self, sequences: Sequence[Sequence[int]]) -> np.ndarray:
        """Logits for ``sequences`` (one request's items), batched with other requests."""
        queue = self._ensure_started()
        if queue.qsize() + len(sequences) > self.config.max_queue:
            raise Overloaded(f"inference queue is full ({self.config.max_queue} items); retry")
        loop = asyncio.get_running_loop()
        futures = []
        for ids in sequences:
            future: asyncio.Future[np.ndarray] = loop.create_future()
            queue.put_nowait(_Item(ids, future))
            futures.append(future)
        rows = await asyncio.gather(*futures)
        return np.stack(rows)

    async def _collect(self, queue: asyncio.Queue[_Item]) -> list[_Item]:
        batch = [await queue.get()]
        deadline = time.monotonic() + self.config.max_delay_s
        while len(batch) < self.config.max_batch_size:
            if not queue.empty():
                batch.append(queue.get_nowait())
                continue
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            try:
                batch.append(await asyncio.wait_for(queue.get(), remaining))
            except TimeoutError:
                break
        return batch

    def _forward(self, batch: list[_Item]) -> np.ndarray:
        ids, mask = pad_batch([item.ids for item in batch], self._pad_id)
        return self._logits(ids, mask)

    async def _run(self) -> None:
        assert self._queue is not None
        queue = self._queue
        loop = asyncio.get_running_loop()
        while True:
            batch = await self._collect(queue)
            batch = [item for item in batch if not item.future.done()]  # client gone
            if not batch:
                continue
            self._on_batch(len(batch))
            try:
                logits = await loop.run_in_executor(self._executor, self._forward, batch)
            except Exception as exc:  # a failed pass fails its requests, not the worker
                for item in batch:
                    if not item.future.done():
                        item.future.set_exception(exc)
                continue
            for item, row in zip(batch, logits, strict=True):
                if not item.future.done():
                    item.future.set_result(row)

    def close(self) -> None:
        if self._worker is not None:
            self._worker.cancel()
        self._executor.shutdown(wait=False, cancel_futures=True)
