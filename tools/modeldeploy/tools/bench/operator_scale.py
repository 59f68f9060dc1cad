"""The operator at scale: 100 / 300 / 1,000 ModelDeployments of one model.

What runs is the product: ``modeldeploy operator run`` (kopf, the ``nop`` platform) as a
process of its own, against a Kubernetes API on loopback (``kube_stub``) and a real
``mlflow server`` reached through a counting HTTP proxy, so every registry request the
operator makes is counted where it arrives. For each size the benchmark creates the
ModelDeployments, waits until every one has ticked, lets the operator settle, and then
measures over a window:

- the operator's RSS (``/proc/PID/status`` VmRSS);
- MLflow requests per minute, by endpoint;
- ticks per minute against the planned rate, and the tick lag
  (``modeldeploy_operator_tick_lag_seconds``, read from the operator's /metrics) with the
  late-tick count.

The figures are what this machine measured under whatever else was running on it; the
machine is in the results file. ``measure`` takes any API server URL, so the test suite
runs a short version against its faithful emulator.
"""

from __future__ import annotations

import http.client
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

from modeldeploy.serving.ports import pick_port

NS = "ml"
MODEL = "scale-model"
SIZES = (100, 300, 1000)
MODELS = 40  # more models, one ModelDeployment each, for the registry sweep's cost
MD_PATH = f"/apis/modeldeploy.io/v1alpha1/namespaces/{NS}/modeldeployments"
Progress = Callable[[str], None]


# -- counting MLflow's requests ------------------------------------------------------------


class CountingProxy:
    """A loopback HTTP proxy in front of MLflow that counts requests by method and path."""

    def __init__(self, upstream: str) -> None:
        host, _, port = upstream.removeprefix("http://").rstrip("/").partition(":")
        self.upstream = (host, int(port or 80))
        self.upstream_url = upstream.rstrip("/")
        self.counts: Counter[str] = Counter()
        self.lock = threading.Lock()
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def _forward(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else None
                with proxy.lock:
                    proxy.counts[f"{self.command} {self.path.split('?')[0]}"] += 1
                skip = {"host", "connection", "content-length"}
                headers = {k: v for k, v in self.headers.items() if k.lower() not in skip}
                conn = http.client.HTTPConnection(*proxy.upstream, timeout=60)
                try:
                    conn.request(self.command, self.path, body, headers)
                    reply = conn.getresponse()
                    data = reply.read()
                finally:
                    conn.close()
                self.send_response(reply.status)
                for key, value in reply.getheaders():
                    if key.lower() not in ("transfer-encoding", "connection", "content-length"):
                        self.send_header(key, value)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = do_PATCH = do_DELETE = do_PUT = _forward

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def snapshot(self) -> Counter[str]:
        with self.lock:
            return Counter(self.counts)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


# -- processes -----------------------------------------------------------------------------


def free_port() -> int:
    return pick_port()


def http_ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=1) as reply:
            return 200 <= reply.status < 300
    except (urllib.error.URLError, OSError):
        return False


@dataclass
class Process:
    """A child in its own session (so a stop reaches its children), logging to a file."""

    popen: subprocess.Popen[bytes]
    log: Path

    def alive(self) -> bool:
        return self.popen.poll() is None

    def tail(self, chars: int = 3000) -> str:
        return self.log.read_text(errors="replace")[-chars:] if self.log.exists() else ""

    def stop(self) -> None:
        if not self.alive():
            return
        os.killpg(self.popen.pid, signal.SIGTERM)
        try:
            self.popen.wait(15)
        except subprocess.TimeoutExpired:
            os.killpg(self.popen.pid, signal.SIGKILL)
            self.popen.wait(10)


def start(argv: Sequence[str], log: Path, ready: Callable[[], bool], env: dict, timeout: float):
    with open(log, "ab") as out:
        popen = subprocess.Popen(
            list(argv),
            stdout=out,
            stderr=subprocess.STDOUT,
            env={**os.environ, **env},
            start_new_session=True,
        )
    proc = Process(popen, log)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not proc.alive():
            raise RuntimeError(f"{argv[0]} exited before it was ready:\n{proc.tail()}")
        if ready():
            return proc
        time.sleep(0.2)
    proc.stop()
    raise TimeoutError(f"{argv[0]} was not ready after {timeout:.0f}s:\n{proc.tail()}")


def start_mlflow(root: Path) -> tuple[Process, str]:
    """``mlflow server`` on sqlite with one worker and the job runner off."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    argv = [str(Path(sys.executable).with_name("mlflow")), "server",
            "--backend-store-uri", f"sqlite:///{root / 'mlflow.db'}",
            "--default-artifact-root", str(root / "artifacts"),
            "--host", "127.0.0.1", "--port", str(port), "--workers", "1"]  # fmt: skip
    env = {"MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
    return start(argv, root / "mlflow.log", lambda: http_ok(f"{url}/health"), env, 120), url


def publish_model(registry_url: str, root: Path) -> None:
    """One registered model with ``champion`` on version 1 (a tiny stand-in checkpoint)."""
    from modeldeploy.registry.mlflow_client import MlflowRegistry

    files = root / "checkpoint"
    files.mkdir(parents=True, exist_ok=True)
    (files / "config.json").write_text('{"model_type": "bert"}')
    client = MlflowRegistry(registry_url)
    version = client.create_version(MODEL, files, tags={})
    client.set_alias(MODEL, "champion", version.version)


def kubeconfig(path: Path, server: str) -> Path:
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "bench", "cluster": {"server": server}}],
        "users": [{"name": "bench", "user": {"token": "bench"}}],
        "contexts": [{"name": "bench", "context": {"cluster": "bench", "user": "bench"}}],
        "current-context": "bench",
    }
    path.write_text(json.dumps(config))
    return path


@dataclass
class Operator:
    process: Process
    metrics: str  # its /metrics URL

    def rss_mb(self) -> float:
        for line in Path(f"/proc/{self.process.popen.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        raise RuntimeError("no VmRSS for the operator process")


def start_operator(
    kube_url: str,
    registry_url: str,
    root: Path,
    tick_s: float,
    watch_s: float,
    extra_env: dict[str, str] | None = None,
) -> Operator:
    liveness, port = f"http://127.0.0.1:{free_port()}/healthz", free_port()
    argv = [str(Path(sys.executable).with_name("modeldeploy")), "operator", "run",
            "--standalone", "-n", NS, "--liveness", liveness]  # fmt: skip
    env = {
        "KUBECONFIG": str(kubeconfig(root / "kubeconfig", kube_url)),
        "MODELDEPLOY_PLATFORM": "nop",
        "MODELDEPLOY_REGISTRY_URI": registry_url,
        "MODELDEPLOY_TICK_SECONDS": str(tick_s),
        "MODELDEPLOY_REGISTRY_WATCH_SECONDS": str(watch_s),
        "MODELDEPLOY_OPERATOR_METRICS_PORT": str(port),
        **(extra_env or {}),
    }
    for key in ("KUBERNETES_SERVICE_HOST", "MODELDEPLOY_WEBHOOK_PORT"):
        os.environ.pop(key, None)
    process = start(argv, root / "operator.log", lambda: http_ok(liveness), env, 90)
    return Operator(process, f"http://127.0.0.1:{port}/metrics")


# -- reading the operator's /metrics -------------------------------------------------------


@dataclass
class Scrape:
    ticks: float = 0.0
    ticked: set[str] = field(default_factory=set)  # names with at least one finished tick
    lag_buckets: dict[float, float] = field(default_factory=dict)  # le -> cumulative count
    lag_sum: float = 0.0
    lag_count: float = 0.0
    late: float = 0.0


def scrape(url: str) -> Scrape:
    with urllib.request.urlopen(url, timeout=30) as reply:
        text = reply.read().decode()
    out = Scrape()
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "modeldeploy_operator_ticks_total":
                out.ticks += sample.value
                if sample.value > 0:
                    out.ticked.add(sample.labels["name"])
            elif sample.name == "modeldeploy_operator_tick_lag_seconds_bucket":
                out.lag_buckets[float(sample.labels["le"])] = sample.value
            elif sample.name == "modeldeploy_operator_tick_lag_seconds_sum":
                out.lag_sum = sample.value
            elif sample.name == "modeldeploy_operator_tick_lag_seconds_count":
                out.lag_count = sample.value
            elif sample.name == "modeldeploy_operator_late_ticks_total":
                out.late = sample.value
    return out


def quantile(before: Scrape, after: Scrape, q: float) -> float | None:
    """The upper bucket edge holding quantile ``q`` of the lags observed between scrapes."""
    total = after.lag_count - before.lag_count
    if total <= 0:
        return None
    for edge in sorted(after.lag_buckets):
        if after.lag_buckets[edge] - before.lag_buckets.get(edge, 0.0) >= q * total:
            return edge
    return None


# -- the measurement -----------------------------------------------------------------------


def _post(url: str, body: dict[str, Any]) -> None:
    data = json.dumps(body).encode()
    request = urllib.request.Request(url, data, {"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=30):
        pass


def create_deployments(kube_url: str, first: int, last: int) -> None:
    for i in range(first, last):
        _post(
            kube_url + MD_PATH,
            {
                "apiVersion": "modeldeploy.io/v1alpha1",
                "kind": "ModelDeployment",
                "metadata": {"name": f"md-{i:04d}", "namespace": NS},
                "spec": {"model": {"name": MODEL}},
            },
        )


def wait_ticked(operator: Operator, count: int, timeout: float) -> float:
    """Seconds until ``count`` ModelDeployments have finished a tick."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if not operator.process.alive():
            raise RuntimeError(f"the operator exited:\n{operator.process.tail()}")
        if len(scrape(operator.metrics).ticked) >= count:
            return time.monotonic() - started
        time.sleep(1)
    raise TimeoutError(f"fewer than {count} ModelDeployments ticked in {timeout:.0f}s")


def measure(
    kube_url: str,
    proxy: CountingProxy,
    operator: Operator,
    sizes: Sequence[int],
    *,
    tick_s: float,
    watch_s: float,
    window_s: float,
    settle_s: float,
    progress: Progress,
) -> list[dict[str, Any]]:
    """Grow to each size in turn and measure one window there (see the module docstring)."""
    rows: list[dict[str, Any]] = []
    have = 0
    for size in sizes:
        create_deployments(kube_url, have, size)
        have = size
        first_ticks = wait_ticked(operator, size, timeout=max(30.0, size * 0.5))
        progress(f"{size} ModelDeployments: all ticked {first_ticks:.0f}s after creation")
        time.sleep(settle_s)
        calls0, metrics0, t0 = proxy.snapshot(), scrape(operator.metrics), time.monotonic()
        time.sleep(window_s)
        calls1, metrics1, t1 = proxy.snapshot(), scrape(operator.metrics), time.monotonic()
        minutes = (t1 - t0) / 60
        calls = calls1 - calls0
        ticks = (metrics1.ticks - metrics0.ticks) / minutes
        lags = metrics1.lag_count - metrics0.lag_count
        lag_sum = metrics1.lag_sum - metrics0.lag_sum
        row = {
            "model_deployments": size,
            "rss_mb": round(operator.rss_mb(), 1),
            "mlflow_calls_per_minute": round(sum(calls.values()) / minutes, 1),
            "mlflow_calls_per_minute_by_endpoint": {
                k: round(v / minutes, 1) for k, v in sorted(calls.items())
            },
            "mlflow_calls_per_watch_interval": round(
                sum(calls.values()) / ((t1 - t0) / watch_s), 2
            ),
            "ticks_per_minute": round(ticks, 1),
            "planned_ticks_per_minute": round(size * 60 / tick_s, 1),
            "tick_lag_mean_seconds": round(lag_sum / lags, 3) if lags else None,
            "tick_lag_p50_le_seconds": quantile(metrics0, metrics1, 0.5),
            "tick_lag_p99_le_seconds": quantile(metrics0, metrics1, 0.99),
            "late_ticks": metrics1.late - metrics0.late,
            "seconds_until_all_ticked": round(first_ticks, 1),
            "window_seconds": round(t1 - t0, 1),
        }
        progress(json.dumps({k: v for k, v in row.items() if "endpoint" not in k}))
        rows.append(row)
    return rows


def measure_models(
    kube_url: str,
    registry_url: str,
    proxy: CountingProxy,
    operator: Operator,
    root: Path,
    models: int,
    *,
    watch_s: float,
    window_s: float,
    progress: Progress,
) -> dict[str, Any]:
    """MLflow requests per minute once ``models`` more models are followed (one
    ModelDeployment each) and nothing changes: what the registry sweep costs."""
    from modeldeploy.registry.mlflow_client import MlflowRegistry

    client, files = MlflowRegistry(registry_url), root / "checkpoint"
    before = len(scrape(operator.metrics).ticked)
    for i in range(models):
        name = f"{MODEL}-{i:03d}"
        client.set_alias(name, "champion", client.create_version(name, files, tags={}).version)
        _post(
            kube_url + MD_PATH,
            {
                "apiVersion": "modeldeploy.io/v1alpha1",
                "kind": "ModelDeployment",
                "metadata": {"name": f"model-{i:03d}", "namespace": NS},
                "spec": {"model": {"name": name}},
            },
        )
    wait_ticked(operator, before + models, timeout=300)
    time.sleep(3 * watch_s)
    calls0, t0 = proxy.snapshot(), time.monotonic()
    time.sleep(window_s)
    calls = proxy.snapshot() - calls0
    minutes = (time.monotonic() - t0) / 60
    row = {
        "models_followed": models + 1,
        "mlflow_calls_per_minute": round(sum(calls.values()) / minutes, 1),
        "mlflow_calls_per_minute_by_endpoint": {
            k: round(v / minutes, 1) for k, v in sorted(calls.items())
        },
        "per_model_polling_would_be_per_minute": round(
            (1 + 2 * (models + 1)) * 60 / watch_s, 1
        ),  # health check + get_model + one page of versions per model, every interval
        "rss_mb": round(operator.rss_mb(), 1),
    }
    progress(json.dumps({k: v for k, v in row.items() if "endpoint" not in k}))
    return row


def registry_client(url: str) -> str:
    """The client class the operator picks for ``url`` in this environment (it inherits it)."""
    from modeldeploy.registry.rest_client import operator_registry

    return type(operator_registry(url)).__name__


@contextmanager
def world(root: Path, progress: Progress) -> Iterator[tuple[Process, CountingProxy]]:
    """A real MLflow with the model published, behind a counting proxy."""
    mlflow, url = start_mlflow(root)
    proxy = CountingProxy(url)
    try:
        publish_model(url, root)
        progress(f"MLflow at {url}, counted through {proxy.url}")
        yield mlflow, proxy
    finally:
        proxy.close()
        mlflow.stop()


def run_suite(output_dir: Path, progress: Progress) -> dict[str, Any]:
    """``modeldeploy-dev bench --suite operator``: the figures for ``bench/results.json``."""
    from modeldeploy.tools.bench.kube_stub import KubeStub, serve

    tick_s, watch_s = 10.0, 10.0
    stub = KubeStub()
    with tempfile.TemporaryDirectory(prefix="operator-scale-") as tmp:
        root = Path(tmp)
        with world(root, progress) as (_, proxy), serve(stub) as kube_url:
            mlflow_url = proxy.upstream_url
            operator = start_operator(kube_url, proxy.url, root, tick_s, watch_s)
            started_mb = round(operator.rss_mb(), 1)
            progress(f"operator RSS at start, no ModelDeployments: {started_mb} MB")
            try:
                rows = measure(
                    kube_url,
                    proxy,
                    operator,
                    SIZES,
                    tick_s=tick_s,
                    watch_s=watch_s,
                    window_s=60.0,
                    settle_s=2 * watch_s,
                    progress=progress,
                )
                quiet = measure_models(
                    kube_url,
                    mlflow_url,
                    proxy,
                    operator,
                    root,
                    MODELS,
                    watch_s=watch_s,
                    window_s=60.0,
                    progress=progress,
                )
            finally:
                operator.process.stop()
    return {
        "setup": (
            "modeldeploy operator run (kopf, nop platform) against an in-process Kubernetes "
            "API stub; a real mlflow server (sqlite, 1 worker) behind a counting proxy; "
            f"one registered model followed by every ModelDeployment; tick {tick_s:.0f}s, "
            f"registry watch {watch_s:.0f}s; each size measured over a 60 s window; then "
            f"{MODELS} more models with one ModelDeployment each, nothing changing"
        ),
        "registry_client": registry_client(proxy.url),
        "rss_mb_at_start": started_mb,
        "sizes": rows,
        "many_models_quiet": quiet,
        "api_requests": dict(stub.requests),
    }
