"""The chart runs the golden-set prober in the joiner's process, on by default, with no
Kubernetes API access: it reads the mounted arms ConfigMap and the registry only."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import helm_python as helm
import kubernetes_validate
import pytest

from modeldeploy.serving.joiner.__main__ import build_parser
from tests.unit.chart.chart_files import CHART
from tests.unit.chart.test_chart import KUBE_VERSION, render
from tests.unit.chart.test_chart_joiner import joiner_objects


@pytest.fixture(scope="module")
def chart() -> Iterator[helm.Chart]:
    with helm.Chart.load(CHART) as loaded:
        yield loaded


def pod(values: dict[str, Any], chart: helm.Chart) -> dict[str, Any]:
    objects = joiner_objects(render(chart, values))
    return objects["Deployment"]["spec"]["template"]["spec"]


def test_the_joiner_probes_by_default_reading_only_files_and_the_registry(
    chart: helm.Chart,
) -> None:
    docs = render(chart, {"joiner": {"enabled": True}, "registry": {"credentialsSecret": "ml"}})
    deployment = joiner_objects(docs)["Deployment"]
    kubernetes_validate.validate(deployment, KUBE_VERSION, strict=True)
    spec = deployment["spec"]["template"]["spec"]
    container = spec["containers"][0]
    args = build_parser().parse_args(container["args"])
    assert args.probe and args.arms_file  # the rollouts to probe come from the arms mount
    assert deployment["spec"]["strategy"]["type"] == "Recreate"  # one prober per rollout
    # Least privilege: no service account token, so no Kubernetes API at all.
    assert spec["automountServiceAccountToken"] is False
    assert container["envFrom"] == [{"secretRef": {"name": "ml"}}]  # registry read access
    mounts = {m["name"]: m for m in container["volumeMounts"]}
    assert mounts["arms"]["readOnly"] is True
    assert mounts["tmp"]["mountPath"] == "/tmp"  # MLflow's downloads, read-only root
    assert container["securityContext"]["readOnlyRootFilesystem"] is True


def test_the_prober_can_be_turned_off(chart: helm.Chart) -> None:
    spec = pod({"joiner": {"enabled": True, "prober": {"enabled": False}}}, chart)
    container = spec["containers"][0]
    assert not build_parser().parse_args(container["args"]).probe
    assert "tmp" not in {v["name"] for v in spec["volumes"]}
    with pytest.raises(Exception, match="prober"):
        render(chart, {"joiner": {"enabled": True, "prober": {"rate": 5}}})
