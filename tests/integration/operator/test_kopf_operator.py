"""The real operator under kopf, against the emulated API server, with a real MLflow.

The KServe platform writes InferenceServices into the emulator (each one validated against
KServe's CRD); this test plays KServe by patching their status (ready, tagged traffic
URLs). The metrics come from the real scrape provider reading a /metrics server whose
counters this test controls, so promotion and rollback are real verdicts of the analysis.
"""

from __future__ import annotations

import json
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import jsonschema
import kopf
import pytest
import yaml
from kopf.testing import KopfRunner

from modeldeploy.operator.api.openapi import to_jsonschema
from modeldeploy.registry.base import TAG_OUTCOME
from modeldeploy.registry.mlflow_client import MlflowRegistry
from modeldeploy.registry.publish import publish_checkpoint
from tests.support.kube_emulator import KubeEmulator, for_modeldeploy, serve_in_thread

pytestmark = pytest.mark.slow
NS = "ml"
OPERATOR = str(Path(__file__).with_name("kopf_operator.py"))
MD_PATH = f"/apis/modeldeploy.io/v1alpha1/namespaces/{NS}/modeldeployments"
ISVC_PATH = f"/apis/serving.kserve.io/v1beta1/namespaces/{NS}/inferenceservices"
TEST_AGENT = "modeldeploy-kopf-test"


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
                    f'modeldeploy_request_duration_seconds_bucket{{{labels},le="0.025"}} {total}',
                    f'modeldeploy_request_duration_seconds_bucket{{{labels},le="+Inf"}} {total}',
                ]
        return "\n".join(lines) + "\n"


@pytest.fixture
def metrics_server() -> Iterator[tuple[Metrics, str]]:
    metrics = Metrics()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = metrics.text(self.path.strip("/").split("/")[0]).encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/plain; version=0.0.4")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield metrics, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


class Cluster:
    """The emulated API server, the playing-KServe loop, and the operator runs."""

    def __init__(self, emulator: KubeEmulator, url: str, metrics: Metrics, murl: str) -> None:
        self.emulator, self.url, self.metrics, self.murl = emulator, url, metrics, murl
        self.validator: jsonschema.Draft7Validator | None = None
        self.validated: set[str] = set()
        self.runner: KopfRunner | None = None

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

    def events(self, name: str) -> list[str]:
        found = self.emulator.objects_of("", "events", NS)
        return [e["reason"] for e in found if e["involvedObject"]["name"] == name]


@pytest.fixture
def cluster(
    mlflow_server, metrics_server, kserve_crds: Path, tmp_path: Path, monkeypatch
) -> Iterator[Cluster]:
    emulator = for_modeldeploy()
    with serve_in_thread(emulator) as url:
        kubeconfig = tmp_path / "kubeconfig"
        kubeconfig.write_text(
            yaml.safe_dump(
                {
                    "apiVersion": "v1",
                    "kind": "Config",
                    "clusters": [{"name": "e", "cluster": {"server": url}}],
                    "users": [{"name": "u", "user": {"token": "t"}}],
                    "contexts": [{"name": "c", "context": {"cluster": "e", "user": "u"}}],
                    "current-context": "c",
                }
            )
        )
        for key, value in {
            "KUBECONFIG": str(kubeconfig),
            "MODELDEPLOY_TEST_KUBE_URL": url,
            "MODELDEPLOY_PLATFORM": "kserve",
            "MODELDEPLOY_REGISTRY_URI": mlflow_server.url,
            "MODELDEPLOY_TICK_SECONDS": "1",
            "MODELDEPLOY_REGISTRY_WATCH_SECONDS": "2",
        }.items():
            monkeypatch.setenv(key, value)
        monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
        world = Cluster(emulator, url, *metrics_server)
        text = (kserve_crds / "serving.kserve.io_inferenceservices.yaml").read_text()
        crd = yaml.load(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
        version = next(v for v in crd["spec"]["versions"] if v["name"] == "v1beta1")
        world.validator = jsonschema.Draft7Validator(
            to_jsonschema(version["schema"]["openAPIV3Schema"])
        )
        yield world


def resource(name: str, model: str, **rollout: Any) -> dict[str, Any]:
    policy = {
        "steps": [50, 100],
        "intervalSeconds": 5,
        "accuracy": {"margin": 0.05},
        "minLabelsPerStep": 100,
        "minRequestsPerStep": 100,
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


def test_create_canary_promotion_and_rollback(cluster, tiny_checkpoint, request):
    model = model_name(request)
    client = MlflowRegistry(request.getfixturevalue("mlflow_server").url)
    publish_checkpoint(client, tiny_checkpoint, model, alias="champion")
    http(f"{cluster.url}{MD_PATH}", "POST", resource("sentiment", model))
    with cluster.operator():
        status = cluster.wait("sentiment", lambda s: s.get("phase") == "Stable")
        assert status["stable"]["version"] == "1" and status["observedGeneration"] == 1
        ready = {c["type"]: c["status"] for c in status["conditions"]}
        assert ready["Ready"] == "True" and ready["RegistryAvailable"] == "True"
        isvc = cluster.isvc("sentiment")
        assert isvc is not None and "canaryTrafficPercent" not in isvc["spec"]["predictor"]

        v2 = publish_checkpoint(client, tiny_checkpoint, model, alias="challenger")
        status = cluster.wait("sentiment", lambda s: (s.get("canary") or {}).get("weight") == 50)
        assert status["phase"] == "Progressing" and status["canary"]["version"] == v2.version
        cluster.wait("sentiment", lambda s: True)  # KServe reports the canary revision
        assert cluster.isvc("sentiment")["spec"]["predictor"]["canaryTrafficPercent"] == 50
        assert status.get("metricsBaseline", {}).get("version") == v2.version

        status = cluster.wait(
            "sentiment", lambda s: s.get("phase") == "Stable" and not s.get("canary")
        )
        assert status["stable"]["version"] == v2.version, status
        assert [h["outcome"] for h in status["history"]] == ["Promoted"]
        assert client.get_model(model).aliases["champion"] == v2.version
        assert status["metricsAvailable"] is True
        cluster.wait("sentiment", lambda s: True)
        assert "canaryTrafficPercent" not in cluster.isvc("sentiment")["spec"]["predictor"]

        cluster.metrics.accuracy["canary"] = 0.55
        v3 = publish_checkpoint(client, tiny_checkpoint, model, alias="challenger")
        status = cluster.wait("sentiment", lambda s: s.get("phase") == "RolledBack")
        assert status["history"][-1]["version"] == v3.version
        assert "accuracy" in status["history"][-1]["reason"]
        assert client.get_version(model, v3.version).tags.get(TAG_OUTCOME)
        assert client.get_model(model).aliases["champion"] == v2.version
        cluster.wait("sentiment", lambda s: True)
        assert "canaryTrafficPercent" not in cluster.isvc("sentiment")["spec"]["predictor"]
    reasons = cluster.events("sentiment")
    assert reasons.count("Promoted") == 1 and "RolledBack" in reasons and "Initialized" in reasons
