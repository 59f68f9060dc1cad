"""Run the benchmark: each system alone on the machine, the same texts, the same load.

Systems are started one at a time (never side by side on the 2 cores), driven at
concurrency 1, 16 and 64 with bounded request counts, then stopped. Ratios are
against the naive baseline measured in the same run. Systems:

- ``baseline_pipeline``: a transformers pipeline behind ``http.server`` (``baseline.py``);
- ``predictor_torch`` and ``predictor_onnx``: this predictor, v1 ``:predict``;
- ``triton``: the checkpoint exported with ``export_repository`` (onnxruntime inside the
  Python backend) in the real tritonserver from nvidia-pytriton, v2 JSON ``/infer``.

Cold start (process start to ``/v2/health/ready``) of the predictor is measured on its own,
a few restarts per runtime, with the start-up phases the server logs.
"""

from __future__ import annotations

import json
import os
import platform
import re
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

from modeldeploy.tools.bench.serving.load import Body, measure, v1_body, v2_text_body

CONCURRENCY = (1, 16, 64)
# Enough requests that each P99 rests on at least 5 tail samples (and >= 30 batches).
REQUESTS = {1: 500, 16: 2000, 64: 3000}
COLD_START_RUNS = 3
COLD_START_GOAL_S = 3.0
BATCH = {"max_batch_size": 32, "max_delay_ms": 5}  # the predictor's and Triton's batching
TRITON_MODEL = "classifier"
Progress = Callable[[str], None]
Spec = tuple[list[str], str, str]  # argv, ready url, inference url


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _ready(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=1) as r:
            return r.status == 200
    except OSError:
        return False


def _start(argv: list[str], ready_url: str, log: Path, timeout: float = 300) -> tuple[Any, float]:
    started = time.perf_counter()
    with open(log, "wb") as out:
        proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    while not _ready(ready_url):
        if proc.poll() is not None:
            raise RuntimeError(f"{argv[2]} exited early; see {log}")
        if time.perf_counter() - started > timeout:
            _stop(proc)
            raise TimeoutError(f"not ready after {timeout}s; see {log}")
        time.sleep(0.02)
    return proc, time.perf_counter() - started


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def _threads() -> int:
    return max(1, len(os.sched_getaffinity(0)))


def _predictor(model_dir: Path, runtime: str) -> Spec:
    port = _free_port()
    argv = [
        sys.executable, "-m", "modeldeploy.serving", "--model-dir", str(model_dir),
        "--runtime", runtime, "--http-port", str(port), "--grpc-port", "0",
        "--max-batch-size", str(BATCH["max_batch_size"]),
        "--max-batch-delay-ms", str(BATCH["max_delay_ms"]),
    ]  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    return argv, f"{base}/v2/health/ready", f"{base}/v1/models/classifier:predict"


def _baseline(model_dir: Path) -> Spec:
    port = _free_port()
    argv = [
        sys.executable, "-m", "modeldeploy.tools.bench.serving.baseline",
        "--model-dir", str(model_dir), "--port", str(port),
    ]  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    return argv, f"{base}/", f"{base}/v1/models/classifier:predict"


def _drive(name: str, url: str, texts: list[str], say: Progress, body: Body) -> dict[str, Any]:
    runs = {}
    for c in CONCURRENCY:
        result = measure(url, texts, c, REQUESTS[c], body=body)
        say(f"{name} c={c}: p50 {result.p50_ms} ms, p99 {result.p99_ms} ms, "
            f"{result.throughput_rps} req/s, {result.errors} errors")  # fmt: skip
        runs[str(c)] = result.to_dict()
    return runs


def _system(name: str, spec: Spec, texts: list[str], log_dir: Path, say: Progress) -> dict:
    argv, ready_url, url = spec
    say(f"starting {name}")
    proc, cold = _start(argv, ready_url, log_dir / f"{name}.log")
    try:
        runs = _drive(name, url, texts, say, v1_body)
    finally:
        _stop(proc)
    return {"start_to_ready_s": round(cold, 2), "runs": runs}


def _triton(model_dir: Path, texts: list[str], log_dir: Path, say: Progress) -> dict[str, Any]:
    """Export ``model_dir``, serve it in tritonserver, drive it through v2 JSON over HTTP."""
    with tempfile.TemporaryDirectory(prefix="modeldeploy-bench-triton-") as work:
        return _triton_in(Path(work) / "repository", model_dir, texts, log_dir, say)


def _triton_in(
    repository: Path, model_dir: Path, texts: list[str], log_dir: Path, say: Progress
) -> dict[str, Any]:
    from modeldeploy.serving.triton import Batching, TritonServer, export_repository

    say("exporting the checkpoint to a Triton repository (Python backend + onnxruntime)")
    started = time.perf_counter()
    batching = Batching(
        max_batch_size=BATCH["max_batch_size"], max_queue_delay_us=BATCH["max_delay_ms"] * 1000
    )
    export_repository(
        model_dir, repository, TRITON_MODEL, 1, runtime="onnx", batching=batching,
        threads=_threads(),
    )  # fmt: skip
    export_s = time.perf_counter() - started
    say("starting triton")
    started = time.perf_counter()
    with TritonServer(repository, log_path=log_dir / "triton.log", startup_timeout=120) as server:
        server.load(TRITON_MODEL)
        cold = time.perf_counter() - started
        url = f"{server.http_url}/v2/models/{TRITON_MODEL}/infer"
        runs = _drive("triton", url, texts, say, v2_text_body)
    return {
        "backend": "python backend running onnxruntime (the CPU target of export_repository)",
        "protocol": "v2 JSON over HTTP",
        "export_s": round(export_s, 2),
        "start_to_ready_s": round(cold, 2),
        "runs": runs,
    }


_PHASES = re.compile(r"start-up phases: (.*)$", re.MULTILINE)


def _phases(log: Path) -> dict[str, float]:
    """The start-up phases the predictor logs (``server.build``), in seconds."""
    found = _PHASES.findall(log.read_text(errors="replace"))
    if not found:
        return {}
    out = {}
    for part in found[-1].split(", "):
        name, _, value = part.rpartition(" ")
        out[name] = float(value.rstrip("s"))
    return out


def _cold_start(model_dir: Path, runtime: str, log_dir: Path, say: Progress) -> dict[str, Any]:
    """Process start to ready, ``COLD_START_RUNS`` restarts (file caches warm, no load)."""
    times, phases = [], {}
    for i in range(COLD_START_RUNS):
        argv, ready_url, _ = _predictor(model_dir, runtime)
        log = log_dir / f"cold-{runtime}-{i}.log"
        proc, seconds = _start(argv, ready_url, log)
        _stop(proc)
        times.append(seconds)
        phases = _phases(log)
    median = statistics.median(times)
    say(f"cold start {runtime}: median {median:.2f}s of {[round(t, 2) for t in times]}")
    return {
        "runs_s": [round(t, 2) for t in times],
        "median_s": round(median, 2),
        "within_goal": median <= COLD_START_GOAL_S,
        "last_run_phases_s": phases,
    }


def _ratios(systems: dict[str, Any]) -> dict[str, Any]:
    base = systems["baseline_pipeline"]["runs"]
    return {
        name: {
            c: {
                "throughput_x": round(r["throughput_rps"] / base[c]["throughput_rps"], 2),
                "p99_ratio": round(r["p99_ms"] / base[c]["p99_ms"], 2),
            }
            for c, r in data["runs"].items()
        }
        for name, data in systems.items()
        if "runs" in data and name != "baseline_pipeline"
    }


def run(output_dir: Path, progress: Progress | None = None) -> dict[str, Any]:
    """Benchmark baseline, predictor (torch, onnx) and Triton on the ``good`` checkpoint.

    Logs go to ``<output_dir>/serving-logs/`` and the figures to
    ``<output_dir>/serving-logs/results.json``; the same dict is returned.
    """
    say = progress or (lambda m: print(f"[bench] {m}", file=sys.stderr, flush=True))
    from modeldeploy.tools.checkpoints import build, load_split

    log_dir = Path(output_dir) / "serving-logs"
    log_dir.mkdir(parents=True, exist_ok=True)
    model_dir = build("good")
    texts = list(load_split("test").texts)
    # The ONNX graph and its parity verdict are cached after the first start; start it
    # once so "cold start" measures a restart with a prepared cache, and report the
    # first (export + parity check) start separately.
    argv, ready_url, _ = _predictor(model_dir, "onnx")
    proc, first = _start(argv, ready_url, log_dir / "predictor_onnx-prepare.log")
    _stop(proc)
    cold_start = {rt: _cold_start(model_dir, rt, log_dir, say) for rt in ("torch", "onnx")}
    systems: dict[str, Any] = {}
    specs = {
        "baseline_pipeline": _baseline(model_dir),
        "predictor_torch": _predictor(model_dir, "torch"),
        "predictor_onnx": _predictor(model_dir, "onnx"),
    }
    for name, spec in specs.items():
        systems[name] = _system(name, spec, texts, log_dir, say)
    try:
        systems["triton"] = _triton(model_dir, texts, log_dir, say)
    except Exception as exc:  # reported, not hidden: the other systems' figures still stand
        say(f"triton failed: {exc}")
        systems["triton"] = {"status": "failed", "reason": f"{type(exc).__name__}: {exc}"[:2000]}
    results = {
        "model": "good (MiniLM-L6 BERT)",
        "texts": f"Rotten Tomatoes test split sentences ({len(texts)})",
        "requests_per_concurrency": REQUESTS,
        "batching": BATCH,
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "load_average_at_end": [round(x, 2) for x in os.getloadavg()],
        },
        "cold_start": {"goal_s": COLD_START_GOAL_S, **cold_start},
        "onnx_first_start_with_export_and_parity_s": round(first, 2),
        "systems": systems,
        "ratios_vs_baseline": _ratios(systems),
        "goal": "throughput >= 4x baseline at concurrency 16 with P99 no worse",
    }
    (log_dir / "results.json").write_text(json.dumps(results, indent=2))
    return results
