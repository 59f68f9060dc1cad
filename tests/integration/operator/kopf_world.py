"""The world the kopf tests drive: the emulated cluster, a playing-KServe loop, /metrics.

Shared by the kopf scenario tests (fixtures in ``conftest.py``). The KServe platform writes
InferenceServices into the emulator (each one validated against KServe's CRD); ``Cluster``
plays KServe by patching their status (ready, tagged traffic URLs). The metrics come from
the real scrape provider reading a /metrics server whose counters ``Metrics`` controls, so
promotion and rollback are real verdicts of the analysis.
"""

from __future__ import annotations

import json
import math
import sys
import threading
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jsonschema
import kopf
import pytest
from kopf.testing import KopfRunner
from prometheus_client import REGISTRY
from prometheus_client.parser import text_string_to_metric_families

from modeldeploy.serving.contract.latency import latency_bucket_edges
from tests.support.kube_emulator import KubeEmulator
from tests.support.processes import ManagedProcess, free_port, http_ok

NS = "ml"
OPERATOR = str(Path(__file__).with_name("kopf_operator.py"))
MD_PATH = f"/apis/modeldeploy.io/v1alpha1/namespaces/{NS}/modeldeployments"
ISVC_PATH = f"/apis/serving.kserve.io/v1beta1/namespaces/{NS}/inferenceservices"
TEST_AGENT = "modeldeploy-kopf-test"


def _lognormal_latency(
    median_s: float = 0.012, sigma: float = 0.3
) -> tuple[tuple[str, float], ...]:
    """Cumulative shares on the contract's buckets of a lognormal latency (P99 about 24 ms).

    Both arms serve the same distribution; its spread over many 5% buckets is what real
    predictors show, so the P99 check can prove them equal as it would on a cluster.
    """
    edges = latency_bucket_edges()
    shares = [0.5 * math.erfc(-math.log(e / median_s) / (sigma * math.sqrt(2))) for e in edges]
    return (*((repr(e), share) for e, share in zip(edges, shares, strict=True)), ("+Inf", 1.0))


LATENCY = _lognormal_latency()


def http(url: str, method: str = "GET", body: Any = None, merge: bool = False) -> Any:
    data = None if body is None else json.dumps(body).encode()
    ctype = "application/merge-patch+json" if merge else "application/json"
    headers = {"Content-Type": ctype, "User-Agent": TEST_AGENT}
    req = urllib.request.Request(url, data, headers, method=method)
    with urllib.request.urlopen(req, timeout=10) as resp:
        return json.loads(resp.read())


class Metrics:
    """A serving process's /metrics as the test wants it: per arm, accuracy and traffic."""

    def __init__(self) -> None:
        self.accuracy = {"stable": 0.85, "canary": 0.85}
        self.counts: dict[tuple[str, str, str], list[float]] = {}  # (path, dep, version) -> c, n
        self.arms: dict[str, tuple[str, str]] = {}  # url path -> (deployment, version)
        self.lock = threading.Lock()

    def grow(self) -> None:
        with self.lock:
            for path, (deployment, version) in self.arms.items():
                row = self.counts.setdefault((path, deployment, version), [0.0, 0.0])
                row[0] += round(200 * self.accuracy[path])
                row[1] += 200

    def text(self, path: str) -> str:
        lines = []
        with self.lock:
            for (arm, deployment, version), (correct, total) in self.counts.items():
                if arm != path:
                    continue
                labels = f'deployment="{deployment}",model_version="{version}",role="{arm}"'
                lines += [
                    f'modeldeploy_labelled_predictions_total{{{labels},correct="true"}} {correct}',
                    f'modeldeploy_labelled_predictions_total{{{labels},correct="false"}} '
                    f"{total - correct}",
                    f'modeldeploy_requests_total{{{labels},outcome="ok"}} {total}',
                ]
                for le, share in LATENCY:  # the same lognormal on both arms
                    bucket = f'modeldeploy_request_duration_seconds_bucket{{{labels},le="{le}"}}'
                    lines.append(f"{bucket} {round(total * share)}")
        return "\n".join(lines) + "\n"


class Cluster:
    """The emulated API server, the playing-KServe loop, and the operator runs."""

    def __init__(self, emulator: KubeEmulator, url: str, metrics: Metrics, murl: str) -> None:
        self.emulator, self.url, self.metrics, self.murl = emulator, url, metrics, murl
        self.validator: jsonschema.Draft7Validator | None = None
        self.validated: set[str] = set()
        self.runner: KopfRunner | None = None
        self.process: ManagedProcess | None = None
        self.processes: dict[str, ManagedProcess] = {}  # name -> operator process

    def md(self, name: str) -> dict[str, Any]:
        return http(f"{self.url}{MD_PATH}/{name}")

    def isvc(self, name: str) -> dict[str, Any] | None:
        found = self.emulator.objects_of("serving.kserve.io", "inferenceservices", NS)
        return next((o for o in found if o["metadata"]["name"] == name), None)

    def play_kserve(self) -> None:
        """What KServe's controller would do: validate, then report ready and tagged traffic."""
        for isvc in self.emulator.objects_of("serving.kserve.io", "inferenceservices", NS):
            meta = isvc["metadata"]
            if meta["resourceVersion"] not in self.validated:
                assert self.validator is not None
                self.validator.validate(isvc)
                self.validated.add(meta["resourceVersion"])
            predictor = isvc["spec"]["predictor"]
            canary = predictor.get("canaryTrafficPercent")
            name = meta["name"]
            md = self.emulator.objects_of("modeldeploy.io", "modeldeployments", NS)
            status = next((m.get("status") or {} for m in md if m["metadata"]["name"] == name), {})
            arms = {"stable": (name, (status.get("stable") or {}).get("version", ""))}
            traffic = [
                {"tag": "prev", "percent": 100 - (canary or 0), "url": self.murl + "/stable"}
            ]
            if canary is not None and status.get("canary"):
                arms["canary"] = (name, status["canary"]["version"])
                traffic.append({"tag": "latest", "percent": canary, "url": self.murl + "/canary"})
            with self.metrics.lock:
                self.metrics.arms = arms
            wanted = {
                "conditions": [{"type": "Ready", "status": "True"}],
                "components": {"predictor": {"traffic": traffic}},
                "observedGeneration": meta["generation"],
            }
            if isvc.get("status") != wanted:
                http(f"{self.url}{ISVC_PATH}/{name}/status", "PATCH", {"status": wanted}, True)

    def wait(self, name: str, what: Callable[[dict], bool], timeout: float = 45.0) -> dict:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.runner is not None and self.runner.future.done():
                raise AssertionError(f"the operator stopped:\n{self.runner.output[-3000:]}")
            if self.process is not None and not self.process.alive():
                raise AssertionError(f"the operator exited:\n{self.process.log_tail(3000)}")
            if self.processes and not any(p.alive() for p in self.processes.values()):
                raise AssertionError("every operator process exited")
            self.play_kserve()
            self.metrics.grow()
            status = self.md(name).get("status") or {}
            if what(status):
                return status
            time.sleep(0.3)
        calls = sorted({(c.verb, c.resource, c.agent[:20]) for c in self.emulator.calls})
        raise AssertionError(f"timed out; status is {json.dumps(status)[:3000]}; calls {calls}")

    def operator(self) -> KopfRunner:
        settings = kopf.OperatorSettings()
        settings.scanning.disabled = True
        args = ["run", "--standalone", "-n", NS, OPERATOR]
        registry = kopf.OperatorRegistry()
        self.runner = KopfRunner(args, registry=registry, settings=settings, timeout=30)
        return self.runner

    def operator_process(
        self,
        start: Callable[..., ManagedProcess],
        name: str,
        *,
        peering: str = "",
        env: dict[str, str] | None = None,
        watch: bool = True,
    ) -> ManagedProcess:
        """``modeldeploy operator run`` as a process of its own, ready once its startup is done.

        ``start`` is the ``process_starter`` fixture (it stops what is left at teardown).
        kopf logs in through ``KUBECONFIG`` and the settings come from the environment, both
        set by the ``cluster`` fixture; the liveness endpoint answers after the startup hook.
        Standalone unless ``peering`` names a peering object (leader election). Its
        /metrics (the tick counter) is at ``process.extra["metrics"]``. ``watch``: the
        test's ``wait`` fails when this process exits (off for one that is meant to).
        """
        liveness = f"http://127.0.0.1:{free_port()}/healthz"
        metrics = free_port()
        argv = [str(Path(sys.executable).with_name("modeldeploy")), "operator", "run"]
        argv += ["--peering", peering] if peering else ["--standalone"]
        argv += ["-n", NS, "--liveness", liveness]
        env = {"MODELDEPLOY_OPERATOR_METRICS_PORT": str(metrics), **(env or {})}
        process = start(name, argv, lambda: http_ok(liveness), env=env, timeout=60)
        process.extra["metrics"] = f"http://127.0.0.1:{metrics}/metrics"
        if peering:
            self.processes[name] = process
        elif watch:
            self.process = process
        return process

    def ticks(self, name: str, process: ManagedProcess | None = None) -> float:
        """Ticks of ``name`` finished so far: the operator's own tick counter.

        Read from the in-process registry for a ``KopfRunner``, else from the /metrics of
        ``process`` (or of every operator process, summed).
        """
        labels = {"namespace": NS, "name": name}
        if self.runner is not None and process is None:
            value = REGISTRY.get_sample_value("modeldeploy_operator_ticks_total", labels)
            return value or 0.0
        chosen = [process] if process else [*self.processes.values(), self.process]
        total = 0.0
        for proc in chosen:
            if proc is None or not proc.alive():
                continue
            with urllib.request.urlopen(str(proc.extra["metrics"]), timeout=5) as resp:
                text = resp.read().decode()
            for family in text_string_to_metric_families(text):
                for sample in family.samples:
                    if sample.name == "modeldeploy_operator_ticks_total" and all(
                        sample.labels.get(k) == v for k, v in labels.items()
                    ):
                        total += sample.value
        return total

    def wait_ticks(self, name: str, more: int, timeout: float = 45.0) -> dict:
        """Wait until ``more`` further ticks of ``name`` have finished; the status then."""
        start = self.ticks(name)
        self.wait(name, lambda s: self.ticks(name) >= start + more, timeout=timeout)
        return self.md(name).get("status") or {}

    def events(self, name: str) -> list[str]:
        return [e["reason"] for e in self.event_objects(name)]

    def event_objects(self, name: str) -> list[dict[str, Any]]:
        """The Events posted about ``name``, oldest first."""
        found = self.emulator.objects_of("", "events", NS)
        mine = [e for e in found if e["involvedObject"]["name"] == name]
        return sorted(mine, key=lambda e: int(e["metadata"]["resourceVersion"]))


def resource(name: str, model: str, **rollout: Any) -> dict[str, Any]:
    policy = {
        "steps": [50, 100],
        "intervalSeconds": 5,
        "analysis": {"accuracyMargin": 0.05, "minLabels": 100, "minRequests": 100},
        **rollout,
    }
    return {
        "apiVersion": "modeldeploy.io/v1alpha1",
        "kind": "ModelDeployment",
        "metadata": {"name": name, "namespace": NS},
        "spec": {"model": {"name": model}, "rollout": policy},
    }


def model_name(request: pytest.FixtureRequest) -> str:
    return "kopf-" + request.node.name.removeprefix("test_")[:30].replace("_", "-")
