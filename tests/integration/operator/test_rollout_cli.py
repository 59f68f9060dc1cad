"""`modeldeploy rollout ...` steers a ModelDeployment through annotations on a real API (emulated).

The CLI talks to the API server through the kubeconfig, exactly as with a cluster; the
operator is not running here, so what is checked is what the CLI writes and reads.
"""

from __future__ import annotations

import pytest

from modeldeploy.cli import main
from modeldeploy.operator.control import PAUSED, PREFIX, controls_from
from tests.integration.operator.kopf_world import MD_PATH, NS, Cluster, http, resource

pytestmark = pytest.mark.slow


def _annotations(cluster: Cluster, name: str) -> dict[str, str]:
    return cluster.md(name)["metadata"].get("annotations") or {}


def test_rollout_commands_set_the_annotations_the_operator_reads(
    cluster: Cluster, capsys: pytest.CaptureFixture[str]
) -> None:
    http(f"{cluster.url}{MD_PATH}", "POST", resource("steered", "steered-model"))
    args = ["-n", NS]

    # promote/abort need a canary in progress: refused with a clear message, exit 1.
    assert main(["rollout", "promote", "steered", *args]) == 1
    assert "no canary is in progress" in capsys.readouterr().err

    status = {"status": {"phase": "Progressing", "canary": {"version": "7", "weight": 25}}}
    http(f"{cluster.url}{MD_PATH}/steered/status", "PATCH", status, merge=True)

    assert main(["rollout", "pause", "steered", *args]) == 0
    assert controls_from(_annotations(cluster, "steered")).paused
    assert main(["rollout", "resume", "steered", *args]) == 0
    assert not controls_from(_annotations(cluster, "steered")).paused
    assert PAUSED not in _annotations(cluster, "steered")

    assert main(["rollout", "promote", "steered", *args]) == 0
    assert _annotations(cluster, "steered")[PREFIX + "promote"] == "7"
    assert controls_from(_annotations(cluster, "steered")).promote == "7"

    capsys.readouterr()
    assert main(["rollout", "status", "steered", *args]) == 0
    out = capsys.readouterr().out
    assert "Progressing" in out and "7" in out


def test_rollout_status_of_a_missing_resource_is_a_clear_error(
    cluster: Cluster, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["rollout", "status", "nope", "-n", NS]) == 1
    assert "nope" in capsys.readouterr().err
