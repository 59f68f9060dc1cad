"""Soak: many requests at fixed concurrency against one tiny predictor; does memory stay flat?

Fault injection found the predictor growing about 3 MiB per 10k requests (its feedback
store held 100k entries plus as many tombstones). The store is now bounded in bytes; this
suite measures what that buys: ``REQUESTS`` v1 requests, each stored under a fresh id,
from ``CONCURRENCY`` loopback clients, sampling the predictor's RSS (``/proc/PID/status``)
and its store gauges every ``SAMPLES``-th of the run.

Figures (``bench/results.json`` key ``soak``): RSS at start, end and max, growth over the
second half (when the store has long been full), errors, requests/s, and the samples.
The machine is shared, so requests/s is what this run got, not a capacity figure.
"""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

REQUESTS = 200_000
CONCURRENCY = 32
SAMPLES = 20
Progress = Callable[[str], None]


def rss_mib(pid: int) -> float:
    """Resident set size of ``pid`` in MiB (Linux)."""
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024.0
    raise RuntimeError(f"no VmRSS for pid {pid}")


def _store_gauges(text: str) -> dict[str, float]:
    from modeldeploy.serving.contract import names as n

    out = {}
    for line in text.splitlines():
        for name, key in ((n.STORE_ENTRIES, "store_entries"), (n.STORE_BYTES, "store_bytes")):
            if line.startswith(name + "{"):
                out[key] = float(line.rsplit(" ", 1)[1])
    return out


async def _soak(
    base_url: str, pid: int, requests: int, concurrency: int, model: str, say: Progress
) -> dict[str, Any]:
    import aiohttp

    url = f"{base_url}/v1/models/{model}:predict"
    every = max(1, requests // SAMPLES)
    done = 0
    errors: dict[str, int] = {}
    samples: list[dict[str, float]] = []
    next_id = iter(range(requests))

    async def sample(session: aiohttp.ClientSession) -> None:
        async with session.get(f"{base_url}/metrics") as response:
            gauges = _store_gauges(await response.text())
        samples.append({"requests": done, "rss_mib": round(rss_mib(pid), 2), **gauges})

    async def client(session: aiohttp.ClientSession) -> None:
        nonlocal done
        for i in next_id:
            # No id: the predictor makes a uuid4 one and stores the prediction under it,
            # as it does for most real traffic.
            body = {"instances": [f"soak request {i}: a fine film"]}
            try:
                async with session.post(url, json=body) as response:
                    await response.read()
                    if response.status != 200:
                        errors[str(response.status)] = errors.get(str(response.status), 0) + 1
            except (aiohttp.ClientError, TimeoutError) as exc:
                errors[type(exc).__name__] = errors.get(type(exc).__name__, 0) + 1
            done += 1
            if done % every == 0:
                await sample(session)
                say(f"{done}/{requests} requests, RSS {samples[-1]['rss_mib']} MiB")

    connector = aiohttp.TCPConnector(limit=concurrency)
    timeout = aiohttp.ClientTimeout(total=60)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
        await sample(session)
        started = time.perf_counter()
        await asyncio.gather(*(client(session) for _ in range(concurrency)))
        seconds = time.perf_counter() - started
        await sample(session)
    rss = [s["rss_mib"] for s in samples]
    half = [s for s in samples if s["requests"] >= requests // 2]
    return {
        "requests": requests,
        "concurrency": concurrency,
        "errors": sum(errors.values()),
        "errors_by_kind": errors,
        "seconds": round(seconds, 1),
        "requests_per_s": round(requests / seconds, 1),
        "rss_mib_start": rss[0],
        "rss_mib_end": rss[-1],
        "rss_mib_max": max(rss),
        "rss_mib_growth_second_half": round(half[-1]["rss_mib"] - half[0]["rss_mib"], 2),
        "store_entries_end": samples[-1].get("store_entries"),
        "store_bytes_end": samples[-1].get("store_bytes"),
        "samples": samples,
    }


def soak(
    base_url: str,
    pid: int,
    requests: int = REQUESTS,
    concurrency: int = CONCURRENCY,
    model: str = "classifier",
    progress: Progress | None = None,
) -> dict[str, Any]:
    """Run the soak against a predictor already serving at ``base_url`` (process ``pid``)."""
    say = progress or (lambda _m: None)
    return asyncio.run(_soak(base_url, pid, requests, concurrency, model, say))


def run(output_dir: Path, progress: Progress) -> dict[str, Any]:
    """The ``soak`` suite: start one tiny predictor (loopback), soak it, stop it."""
    from modeldeploy.tools.bench.serving.run import _free_port, _start, _stop
    from modeldeploy.tools.checkpoints import build

    model_dir = build("tiny")
    port = _free_port()
    argv = [
        sys.executable, "-m", "modeldeploy.serving", "--model-dir", str(model_dir),
        "--http-port", str(port), "--grpc-port", "0", "--threads", "1",
        "--deployment", "soak",
    ]  # fmt: skip
    output_dir.mkdir(parents=True, exist_ok=True)
    proc, ready_s = _start(
        argv, f"http://127.0.0.1:{port}/v2/health/ready", output_dir / "soak.log"
    )
    try:
        progress(f"tiny predictor ready in {ready_s:.1f}s (pid {proc.pid})")
        figures = soak(f"http://127.0.0.1:{port}", proc.pid, progress=progress)
    finally:
        _stop(proc)
    figures["predictor"] = "tiny, --threads 1, default store bounds"
    return figures
