"""A closed-loop load generator: N concurrent clients, each sending one text per request.

The body is built per text by ``body`` (KServe v1 ``{"instances": [text]}`` by default;
:func:`v2_text_body` for Triton's v2 JSON API), so every system gets the same texts, the
same concurrency and the same client.

The client shares the machine's cores with the server it measures, so it is made as
cheap as it can be and its own cost is reported:

- every request is encoded once, before the clock starts (HTTP/1.1 request line, headers
  and JSON body as one ``bytes``), so a request costs one socket write;
- raw asyncio streams with keep-alive, one connection per client, in one process (no
  HTTP library: httpx's pool cost about 3 ms of CPU per request at concurrency 16 and
  11 ms at 64 on this machine, enough to starve the server it measured);
- the answer is read by ``Content-Length`` and checked only for its status code.

``client_cpu_ms_per_request`` (this process's CPU time over the run, per request) says how
much of the cores the measurement itself took. A server that closes the connection (the
naive baseline speaks HTTP/1.0) is reconnected to, which is part of what it costs.

Served throughput counts 200 answers only. A 503 (the predictor's bounded queue shedding
load) is counted in ``shed``, other failures in ``errors``; neither is throughput. A
request not answered within ``REQUEST_TIMEOUT_S`` is an error too (its connection is
dropped and the client goes on), so a lost answer shows in ``errors`` instead of hanging
the benchmark.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any
from urllib.parse import urlsplit

import numpy as np
import orjson

Body = Callable[[str], dict[str, Any]]
REQUEST_TIMEOUT_S = 60.0


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
    throughput_rps: float  # 200 answers per second of wall time
    shed: int = 0  # 503 answers (load shedding): sent, answered, not served
    client_cpu_ms_per_request: float = 0.0

    def to_dict(self) -> dict:
        return asdict(self)


def encode_requests(url: str, texts: Sequence[str], body: Body) -> list[bytes]:
    """One complete HTTP/1.1 POST per text, encoded before any timing starts."""
    parts = urlsplit(url)
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    head = (
        f"POST {target} HTTP/1.1\r\nHost: {parts.netloc}\r\n"
        "Content-Type: application/json\r\nConnection: keep-alive\r\n"
    )
    out = []
    for text in texts:
        payload = orjson.dumps(body(text))
        out.append(f"{head}Content-Length: {len(payload)}\r\n\r\n".encode() + payload)
    return out


class _Connection:
    """One keep-alive connection; reopened when the server closes it."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def exchange(self, request: bytes) -> int:
        """Send ``request``, read the whole answer, return its status code."""
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        assert self.reader is not None
        self.writer.write(request)
        head = await self.reader.readuntil(b"\r\n\r\n")
        lines = head.split(b"\r\n")
        version, status = lines[0].split(b" ", 2)[:2]
        length, close, chunked = 0, version == b"HTTP/1.0", False
        for line in lines[1:]:
            name, _, value = line.partition(b":")
            name = name.strip().lower()
            if name == b"content-length":
                length = int(value)
            elif name == b"connection":
                close = value.strip().lower() == b"close"
            elif name == b"transfer-encoding":
                chunked = b"chunked" in value.lower()
        if chunked:
            await self._skip_chunks()
        elif length:
            await self.reader.readexactly(length)
        if close:
            self.close()
        return int(status)

    async def _skip_chunks(self) -> None:
        assert self.reader is not None
        while True:
            size = int((await self.reader.readuntil(b"\r\n")).split(b";")[0], 16)
            await self.reader.readexactly(size + 2)  # the chunk and its CRLF
            if size == 0:
                return

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        self.reader = self.writer = None


async def _drive(
    url: str, requests: Sequence[bytes], concurrency: int, total: int
) -> tuple[list[float], int, int, float]:
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    latencies: list[float] = []
    errors = shed = 0
    counter = iter(range(total))

    async def worker() -> None:
        nonlocal errors, shed
        connection = _Connection(host, port)
        try:
            for i in counter:
                started = time.perf_counter()
                try:
                    status = await asyncio.wait_for(
                        connection.exchange(requests[i % len(requests)]), REQUEST_TIMEOUT_S
                    )
                except (OSError, asyncio.IncompleteReadError, ValueError, TimeoutError):
                    connection.close()  # reset or refused: an error, not a crash
                    errors += 1
                    continue
                if status == 200:
                    latencies.append(time.perf_counter() - started)
                elif status == 503:
                    shed += 1
                else:
                    errors += 1
        finally:
            connection.close()

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return latencies, errors, shed, time.perf_counter() - started


def measure(
    url: str,
    texts: Sequence[str],
    concurrency: int,
    total: int,
    warmup: int = 8,
    body: Body = v1_body,
) -> LoadResult:
    """Warm up (not measured), then run ``total`` requests with ``concurrency`` clients."""
    requests = encode_requests(url, texts, body)
    asyncio.run(_drive(url, requests[-warmup:], min(concurrency, warmup), warmup))
    cpu = time.process_time()
    latencies, errors, shed, wall = asyncio.run(_drive(url, requests, concurrency, total))
    cpu = time.process_time() - cpu
    ms = np.array(latencies or [float("nan")]) * 1000
    return LoadResult(
        concurrency=concurrency,
        requests=total,
        errors=errors,
        seconds=round(wall, 3),
        p50_ms=round(float(np.percentile(ms, 50)), 2),
        p99_ms=round(float(np.percentile(ms, 99)), 2),
        throughput_rps=round(len(latencies) / wall, 2),
        shed=shed,
        client_cpu_ms_per_request=round(cpu * 1000 / total, 3),
    )
