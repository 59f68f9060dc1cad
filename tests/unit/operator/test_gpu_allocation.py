"""The GPUs a predictor asks for (``spec.resources.gpu`` -> ``nvidia.com/gpu``) are the GPUs
its accounting reports and bills.

In a pod, the NVIDIA device plugin exposes exactly the container's ``nvidia.com/gpu`` devices,
so NVML (or CUDA) inside it counts that many. Here the device plugin is the one stand-in: a
fake NVML that sees the allocated count, as on the node. What a real device plugin exposes is
not exercised without a GPU node.
"""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from modeldeploy.operator.api.status import VersionRef
from modeldeploy.operator.api.types import parse_spec
from modeldeploy.operator.platforms import kserve_manifests as m
from modeldeploy.operator.platforms.base import Target
from modeldeploy.operator.settings import KServeSettings
from modeldeploy.serving import gpu

STABLE, CANARY = VersionRef("1", "aa", "s3://b/1"), VersionRef("2", "bb", "s3://b/2")
CFG = KServeSettings(triton_base_uri="s3://models/triton")


def target(count: int, mode: str = "RawDeployment", runtime: str = "kserve-python") -> Target:
    raw = {
        "model": {"name": "sentiment", "registryUri": "http://mlflow:5000"},
        "deploymentMode": mode,
        "runtime": runtime,
        "resources": {"gpu": count} if count else {},
    }
    return Target("sentiment", "ml", parse_spec(raw), uid="u-1")


def arm_resources(body: dict) -> list[dict]:
    """The resources of every arm's serving container (stable, then the canary's)."""
    spec = body["spec"]
    predictors = [spec["predictor"], *(c["predictor"] for c in spec.get("canary", []))]
    out = []
    for pred in predictors:
        container = pred["model"] if "model" in pred else pred["containers"][0]
        out.append(container["resources"])
    return out


def device_plugin_nvml(allocated: int) -> SimpleNamespace:
    """NVML as the container sees it: only the allocated devices are mounted."""
    return SimpleNamespace(
        nvmlInit=lambda: None,
        nvmlDeviceGetCount=lambda: allocated,
        nvmlShutdown=lambda: None,
    )


@pytest.mark.parametrize("count", [1, 2, 4])
@pytest.mark.parametrize("runtime", ["kserve-python", "triton"])
def test_each_arm_asks_for_the_spec_gpus_and_the_predictor_counts_them(
    count: int, runtime: str
) -> None:
    body = m.inference_service(target(count, runtime=runtime), STABLE, CANARY, 10, cfg=CFG)
    arms = arm_resources(body)
    assert len(arms) == 2  # stable and the RawDeployment canary each hold their own
    for resources in arms:
        limit = resources["limits"]["nvidia.com/gpu"]
        assert limit == str(count)
        # Extended resources cannot be overcommitted: a request, if any, equals the limit.
        assert resources["requests"].get("nvidia.com/gpu", limit) == limit
        probe = lambda env, n=int(limit): gpu.nvml_devices(env, device_plugin_nvml(n))  # noqa: E731
        meter = gpu.meter_for("cpu", env={}, probes=[probe])
        assert meter is not None and meter.count == count


def test_a_cpu_predictor_asks_for_no_gpu_and_holds_no_meter() -> None:
    body = m.inference_service(target(0), STABLE, CANARY, 10, cfg=CFG)
    for resources in arm_resources(body):
        assert "nvidia.com/gpu" not in resources["limits"]
        assert "nvidia.com/gpu" not in resources["requests"]
    probe = lambda env: gpu.nvml_devices(env, device_plugin_nvml(0))  # noqa: E731
    assert gpu.meter_for("cpu", env={}, probes=[probe]) is None
