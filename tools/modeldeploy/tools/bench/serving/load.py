"""A closed-loop load generator: N concurrent clients, each sending one text per request.

The body is built per text by ``body`` (KServe v1 ``{"instances": [text]}`` by default;
:func:`v2_text_body` for Triton's v2 JSON API), so every system gets the same texts, the
same concurrency and the same client.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import httpx
import numpy as np

Body = Callable[[str], dict[str, Any]]


def v1_body(text: str) -> dict[str, Any]:
    """KServe v1 ``:predict`` (the predictor and the naive baseline)."""
    return {"instances": [text]}


def v2_text_body(text: str) -> dict[str, Any]:
    """Open Inference Protocol JSON for the exported Triton model (input ``TEXT``, BYTES)."""
    return {
        "inputs": [{"name": "TEXT", "shape": [1, 1], "datatype": "BYTES", "data": [text]}],
        "outputs": [{"name": "LABEL"}, {"name": "PROBABILITIES"}],
    }


@dataclass(frozen=True)
class LoadResult:
    concurrency: int
    requests: int
    errors: int
    seconds: float
    p50_ms: float
    p99_ms: float
    throughput_rps: float

    def to_dict(self) -> dict:
        return asdict(self)


async def _drive(
    url: str, texts: Sequence[str], concurrency: int, total: int, body: Body
) -> LoadResult:
    latencies: list[float] = []
    errors = 0
    counter = iter(range(total))
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(timeout=120, limits=limits) as client:

        async def worker() -> None:
            nonlocal errors
            for i in counter:
                started = time.perf_counter()
                try:
                    r = await client.post(url, json=body(texts[i % len(texts)]))
                except httpx.TransportError:  # reset or refused: an error, not a crash
                    errors += 1
                    continue
                latencies.append(time.perf_counter() - started)
                errors += r.status_code != 200

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        wall = time.perf_counter() - started
    ms = np.array(latencies or [float("nan")]) * 1000
    return LoadResult(
        concurrency=concurrency,
        requests=total,
        errors=errors,
        seconds=round(wall, 3),
        p50_ms=round(float(np.percentile(ms, 50)), 2),
        p99_ms=round(float(np.percentile(ms, 99)), 2),
        throughput_rps=round(total / wall, 2),
    )


def measure(
    url: str,
    texts: Sequence[str],
    concurrency: int,
    total: int,
    warmup: int = 8,
    body: Body = v1_body,
) -> LoadResult:
    """Warm up (not measured), then run ``total`` requests with ``concurrency`` clients."""
    asyncio.run(_drive(url, texts[-warmup:], min(concurrency, warmup), warmup, body))
    return asyncio.run(_drive(url, texts, concurrency, total, body))
