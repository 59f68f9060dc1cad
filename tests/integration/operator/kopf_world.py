"""The world the kopf tests drive: the emulated cluster, a playing-KServe loop, /metrics.

Shared by the kopf scenario tests (fixtures in ``conftest.py``). The KServe platform writes
InferenceServices into the emulator (each one validated against KServe's CRD); ``Cluster``
plays KServe by patching their status (ready, tagged traffic URLs). The metrics come from
the real scrape provider reading a /metrics server whose counters ``Metrics`` controls, so
promotion and rollback are real verdicts of the analysis.
"""

from __future__ import annotations

import json
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

from tests.support.kube_emulator import KubeEmulator
from tests.support.processes import ManagedProcess, free_port, http_ok

NS = "ml"
OPERATOR = str(Path(__file__).with_name("kopf_operator.py"))
MD_PATH = f"/apis/modeldeploy.io/v1alpha1/namespaces/{NS}/modeldeployments"
ISVC_PATH = f"/apis/serving.kserve.io/v1beta1/namespaces/{NS}/inferenceservices"
TEST_AGENT = "modeldeploy-kopf-test"
LATENCY = (("0.01", 0.5), ("0.019", 0.97), ("0.02", 0.999), ("0.05", 1.0), ("+Inf", 1.0))


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
                for le, share in LATENCY:  # P99 between 19 and 20 ms on both arms
                    bucket = f'modeldeploy_request_duration_seconds_bucket{{{labels},le="{le}"}}'
                    lines.append(f"{bucket} {total * share}")
        return "\n".join(lines) + "\n"


class Cluster:
    """The emulated API server, the playing-KServe loop, and the operator runs."""

    def __init__(self, emulator: KubeEmulator, url: str, metrics: Metrics, murl: str) -> None:
        self.emulator, self.url, self.metrics, self.murl = emulator, url, metrics, murl
        self.validator: jsonschema.Draft7Validator | None = None
        self.validated: set[str] = set()
        self.runner: KopfRunner | None = None
        self.process: ManagedProcess | None = None

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

    def operator_process(self, start: Callable[..., ManagedProcess], name: str) -> ManagedProcess:
        """``modeldeploy operator run`` as a process of its own, ready once its startup is done.

        ``start`` is the ``process_starter`` fixture (it stops what is left at teardown).
        kopf logs in through ``KUBECONFIG`` and the settings come from the environment, both
        set by the ``cluster`` fixture; the liveness endpoint answers after the startup hook.
        """
        liveness = f"http://127.0.0.1:{free_port()}/healthz"
        argv = [str(Path(sys.executable).with_name("modeldeploy")), "operator", "run"]
        argv += ["--standalone", "-n", NS, "--liveness", liveness]
        self.process = start(name, argv, lambda: http_ok(liveness), timeout=60)
        return self.process

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
