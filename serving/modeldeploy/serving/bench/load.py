"""A closed-loop load generator: N concurrent clients, each sending one text per request."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import httpx
import numpy as np


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


async def _drive(url: str, texts: Sequence[str], concurrency: int, total: int) -> LoadResult:
    latencies: list[float] = []
    errors = 0
    counter = iter(range(total))
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(timeout=120, limits=limits) as client:

        async def worker() -> None:
            nonlocal errors
            for i in counter:
                started = time.perf_counter()
                r = await client.post(url, json={"instances": [texts[i % len(texts)]]})
                latencies.append(time.perf_counter() - started)
                errors += r.status_code != 200

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        wall = time.perf_counter() - started
    ms = np.array(latencies) * 1000
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
    url: str, texts: Sequence[str], concurrency: int, total: int, warmup: int = 8
) -> LoadResult:
    """Warm up (not measured), then run ``total`` requests with ``concurrency`` clients."""
    asyncio.run(_drive(url, texts[-warmup:], min(concurrency, warmup), warmup))
    return asyncio.run(_drive(url, texts, concurrency, total))
