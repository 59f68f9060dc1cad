"""Leader election and registry outages, with real operator processes.

Same world as ``test_kopf_operator.py`` (emulated API server, real MLflow, the kserve
platform, real verdicts from /metrics the test controls). Each operator is its own
``modeldeploy operator run`` process, so signals, kopf's peering and MLflow's client
retry policy are the real ones.
"""

from __future__ import annotations

import signal
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from modeldeploy.operator import rbac
from modeldeploy.registry.mlflow_client import MlflowRegistry
from modeldeploy.registry.publish import publish_checkpoint
from tests.integration.operator.kopf_world import (
    MD_PATH,
    NS,
    TEST_AGENT,
    Cluster,
    http,
    model_name,
    resource,
)
from tests.support.processes import ManagedProcess

pytestmark = pytest.mark.slow
PEERING = "modeldeploy"
PAUSED_ALL = "Pausing all operators, including self"


def condition(status: dict[str, Any], kind: str) -> dict[str, Any] | None:
    return next((c for c in status.get("conditions") or [] if c["type"] == kind), None)


def active(cluster: Cluster, name: str, seconds: float = 4.0) -> list[str]:
    """The operator processes whose tick counter for ``name`` grows over ``seconds``."""
    before = {n: cluster.ticks(name, p) for n, p in cluster.processes.items() if p.alive()}
    cluster.wait_ticks(name, 3)  # a few ticks by whoever is active, then compare
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:  # observation window: counters only ever grow
        cluster.play_kserve()
        time.sleep(0.3)
    return sorted(n for n, was in before.items() if cluster.ticks(name, cluster.processes[n]) > was)


@pytest.mark.long
def test_two_replicas_one_active_the_leader_killed_mid_canary_the_other_promotes_once(
    cluster: Cluster, tiny_checkpoint, request, process_starter, mlflow_server
) -> None:
    model = model_name(request)
    client = MlflowRegistry(mlflow_server.url)
    publish_checkpoint(client, tiny_checkpoint, model, alias="champion")
    peering = {"apiVersion": "kopf.dev/v1", "kind": "KopfPeering", "metadata": {"name": PEERING}}
    http(f"{cluster.url}/apis/kopf.dev/v1/namespaces/{NS}/kopfpeerings", "POST", peering)
    http(f"{cluster.url}{MD_PATH}", "POST", resource("sentiment", model, steps=[25, 50, 100]))
    env = {"MODELDEPLOY_PEERING_LIFETIME_SECONDS": "5"}  # a killed leader is dead after 5 s

    first = cluster.operator_process(process_starter, "replica-a", peering=PEERING, env=env)
    second = cluster.operator_process(process_starter, "replica-b", peering=PEERING, env=env)
    cluster.wait("sentiment", lambda s: s.get("phase") == "Stable")
    leaders = active(cluster, "sentiment")
    assert len(leaders) == 1, leaders  # each replica drew its own priority: one is active
    leader = cluster.processes[leaders[0]]
    follower = second if leader is first else first

    v2 = publish_checkpoint(client, tiny_checkpoint, model, alias="challenger")
    cluster.wait("sentiment", lambda s: (s.get("canary") or {}).get("step", 0) >= 1)
    leader.kill()  # SIGKILL: no goodbye to the peering object, its lease has to expire
    assert leader.popen.returncode == -signal.SIGKILL
    assert client.get_model(model).aliases["champion"] != v2.version

    status = cluster.wait(
        "sentiment", lambda s: s.get("phase") == "Stable" and not s.get("canary"), timeout=90
    )
    assert status["stable"]["version"] == v2.version
    assert [(h["version"], h["outcome"]) for h in status["history"]] == [(v2.version, "Promoted")]
    assert cluster.ticks("sentiment", follower) > 0  # the promotion was the follower's
    assert client.get_model(model).aliases["champion"] == v2.version
    cluster.wait_ticks("sentiment", 3)  # more ticks after the promotion: nothing repeats
    reasons = cluster.events("sentiment")
    told = [(e["reason"], e["message"]) for e in cluster.event_objects("sentiment")]
    assert reasons.count("Promoted") == 1 and reasons.count("RolloutStarted") == 1, told
    for proc in (first, second):
        assert PAUSED_ALL not in proc.log_tail(10**7), proc.log_tail(3000)
    # RBAC: a peering run calls only what the rules grant, and every peering rule is used.
    made = {(c.group, c.resource, c.verb) for c in cluster.emulator.calls if c.agent != TEST_AGENT}
    granted = rbac.allowed(rbac.RULES)
    assert made <= granted, made - granted
    namespaced_peering = {t for t in rbac.allowed(rbac.PEERING) if t[1] == "kopfpeerings"}
    assert namespaced_peering <= made, namespaced_peering - made


class Silent:
    """A TCP server that accepts connections and never answers (a hung registry)."""

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.accepted: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.accepted.append(conn)

    def close(self) -> None:
        self.sock.close()
        for conn in self.accepted:
            conn.close()


@pytest.fixture
def silent() -> Iterator[Silent]:
    server = Silent()
    yield server
    server.close()


def unreachable(name: str, uri: str) -> dict[str, Any]:
    body = resource(name, "unreachable-model")
    body["spec"]["model"]["registryUri"] = uri
    return body


def registry_down(status: dict[str, Any]) -> bool:
    found = condition(status, "RegistryAvailable")
    return found is not None and found["status"] == "False"


def test_an_unreachable_registry_is_reported_within_two_ticks(
    cluster: Cluster, process_starter
) -> None:
    # The process runs with the operator's own MLflow retry policy (nothing set here).
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        uri = f"http://127.0.0.1:{closed.getsockname()[1]}"
        http(f"{cluster.url}{MD_PATH}", "POST", unreachable("down", uri))
        cluster.operator_process(process_starter, "operator")
        status = cluster.wait("down", registry_down, timeout=60)
        assert cluster.ticks("down") <= 2
    assert status.get("phase") != "Failed"


def test_sigterm_stops_the_operator_within_ten_seconds_while_the_registry_hangs(
    cluster: Cluster, process_starter, silent: Silent
) -> None:
    http(f"{cluster.url}{MD_PATH}", "POST", unreachable("hung", f"http://127.0.0.1:{silent.port}"))
    operator: ManagedProcess = cluster.operator_process(process_starter, "operator", watch=False)
    deadline = time.monotonic() + 60
    while not silent.accepted:  # a tick is now blocked on the registry
        assert time.monotonic() < deadline and operator.alive(), operator.log_tail(3000)
        time.sleep(0.1)
    time.sleep(1)
    assert operator.alive()
    started = time.monotonic()
    operator.popen.send_signal(signal.SIGTERM)
    operator.popen.wait(timeout=30)
    took = time.monotonic() - started
    assert took < 10, (took, operator.log_tail(3000))
