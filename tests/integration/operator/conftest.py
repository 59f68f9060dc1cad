"""Fixtures of the kopf scenario tests: the /metrics server and the emulated cluster."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from modeldeploy.operator.api.openapi import to_jsonschema
from tests.integration.operator.kopf_world import Cluster, Metrics
from tests.support.kube_emulator import for_modeldeploy, serve_in_thread


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


@pytest.fixture
def cluster(
    mlflow_server, metrics_server, kserve_crds: Path, tmp_path: Path, monkeypatch
) -> Iterator[Cluster]:
    emulator = for_modeldeploy()
    # kopf's leader election (peering): the object the chart ships, in the watched namespace.
    emulator.declare("kopf.dev", "v1", "kopfpeerings", "KopfPeering")
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
