"""GPU accounting of a predictor process, with fake devices and a fake clock.

The real device paths (NVML, torch.cuda) are the same functions given a real module; here
they get stand-ins with the documented API, and the torch CUDA path runs for real only on a
GPU node (tests/integration/serving/test_gpu_node.py).
"""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
from prometheus_client import CollectorRegistry

from modeldeploy.serving import gpu
from modeldeploy.serving.contract import names as n
from modeldeploy.serving.gpu import GpuDevices, GpuMeter

LABELS = {"deployment": "d", "model_version": "3", "role": "canary"}


class FakeClock:
    def __init__(self, now: float = 100.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.mark.parametrize(
    ("total", "visible", "count"),
    [
        (4, None, 4),  # unset: every device
        (4, "", 0),  # empty: none
        (4, "2,1", 2),
        (4, "0,2,-1,1", 2),  # an invalid index hides itself and what follows (CUDA docs)
        (2, "0,5,1", 1),  # an index past the last device is invalid too
        (8, "GPU-8932f937,GPU-1a2b", 2),  # UUIDs, possibly abbreviated
        (8, "MIG-GPU-8932f937-d72c/1/2", 1),
        (4, "1,1", 1),  # a repeat is one device
        (1, "GPU-a,GPU-b", 1),  # never more than the driver has
        (4, "NoDevFiles", 0),
    ],
)
def test_visible_count_follows_the_cuda_rules(total: int, visible: str | None, count: int) -> None:
    assert gpu.visible_count(total, visible) == count


def fake_nvml(count: int, fail: bool = False) -> SimpleNamespace:
    calls: list[str] = []

    def init() -> None:
        calls.append("init")
        if fail:
            raise RuntimeError("NVML Shared Library Not Found")

    return SimpleNamespace(
        calls=calls,
        nvmlInit=init,
        nvmlDeviceGetCount=lambda: calls.append("count") or count,
        nvmlShutdown=lambda: calls.append("shutdown"),
    )


def test_nvml_counts_the_driver_devices_restricted_by_cuda_visible_devices() -> None:
    nvml = fake_nvml(8)
    found = gpu.nvml_devices({"CUDA_VISIBLE_DEVICES": "3,5"}, nvml)  # type: ignore[arg-type]
    assert found == GpuDevices(2, "nvml")
    assert nvml.calls == ["init", "count", "shutdown"]  # NVML is released again
    assert gpu.nvml_devices({}, fake_nvml(8)) == GpuDevices(8, "nvml")  # type: ignore[arg-type]


def test_nvml_without_a_driver_cannot_tell() -> None:
    assert gpu.nvml_devices({}, fake_nvml(0, fail=True)) is None  # type: ignore[arg-type]


def fake_torch(available: bool, count: int) -> SimpleNamespace:
    synced: list[bool] = []
    cuda = SimpleNamespace(
        is_available=lambda: available,
        device_count=lambda: count,
        synchronize=lambda: synced.append(True),
    )
    return SimpleNamespace(cuda=cuda, synced=synced)


def test_torch_reports_its_cuda_device_count_and_zero_without_cuda() -> None:
    assert gpu.torch_devices({}, fake_torch(True, 2)) == GpuDevices(2, "torch")
    assert gpu.torch_devices({}, fake_torch(False, 0)) == GpuDevices(0, "torch")


def test_detect_takes_the_first_probe_that_can_tell() -> None:
    nvml_missing = lambda env: None  # noqa: E731
    two = lambda env: GpuDevices(2, "torch")  # noqa: E731
    assert gpu.detect({}, [nvml_missing, two]) == GpuDevices(2, "torch")
    assert gpu.detect({}, [nvml_missing]) == GpuDevices(0, "none")


def test_allocated_seconds_are_gpus_times_wall_time_since_the_process_started() -> None:
    clock = FakeClock()
    meter = GpuMeter(GpuDevices(2, "nvml"), clock, held_for=5.0)
    assert meter.allocated_seconds() == 10.0  # 2 GPUs x the 5 s the process already ran
    clock.now += 30.0
    assert meter.allocated_seconds() == 70.0  # idle time is billed too
    assert meter.busy_seconds() == 0.0


def test_busy_seconds_time_each_forward_pass_up_to_the_device_synchronize() -> None:
    clock = FakeClock()
    order: list[str] = []

    def synchronize() -> None:
        order.append("sync")
        clock.now += 0.004  # the device finishes 4 ms after the launch returned

    def logits(ids: np.ndarray, mask: np.ndarray) -> np.ndarray:
        order.append("launch")
        clock.now += 0.001
        return np.zeros((len(ids), 2), dtype=np.float32)

    meter = GpuMeter(GpuDevices(1, "torch"), clock, synchronize=synchronize)
    timed = meter.timed(logits)
    ids = np.zeros((3, 8), dtype=np.int64)
    assert timed(ids, ids).shape == (3, 2)
    timed(ids, ids)
    assert order == ["launch", "sync", "launch", "sync"]
    assert meter.busy_seconds() == pytest.approx(0.010)


def test_a_failed_forward_pass_still_counts_its_device_time() -> None:
    clock = FakeClock()

    def broken(ids: np.ndarray, mask: np.ndarray) -> np.ndarray:
        clock.now += 0.002
        raise RuntimeError("CUDA error: out of memory")

    meter = GpuMeter(GpuDevices(1, "torch"), clock, synchronize=lambda: None)
    with pytest.raises(RuntimeError, match="out of memory"):
        meter.timed(broken)(np.zeros((1, 1)), np.zeros((1, 1)))
    assert meter.busy_seconds() == pytest.approx(0.002)


def test_a_forward_pass_on_the_cpu_is_not_timed_as_gpu_work() -> None:
    def logits(ids: np.ndarray, mask: np.ndarray) -> np.ndarray:
        return ids

    meter = GpuMeter(GpuDevices(1, "nvml"), FakeClock(), synchronize=None)
    assert meter.timed(logits) is logits  # GPU held but unused: busy stays 0


def test_meter_for_holds_no_meter_without_a_gpu_and_syncs_only_a_cuda_backend(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    none = lambda env: GpuDevices(0, "torch")  # noqa: E731
    one = lambda env: GpuDevices(1, "nvml")  # noqa: E731
    assert gpu.meter_for("cpu", probes=[none]) is None
    torch = fake_torch(True, 1)
    monkeypatch.setattr(gpu, "torch_synchronize", lambda: torch.cuda.synchronize)
    on_cuda = gpu.meter_for("cuda", probes=[one])
    assert on_cuda is not None and on_cuda.count == 1
    on_cuda.timed(lambda ids, mask: ids)(np.zeros(1), np.zeros(1))
    assert torch.synced == [True]
    on_cpu = gpu.meter_for("cpu", probes=[one])
    assert on_cpu is not None
    on_cpu.timed(lambda ids, mask: ids)(np.zeros(1), np.zeros(1))
    assert on_cpu.busy_seconds() == 0.0 and torch.synced == [True]


def test_the_predictor_exports_gpu_series_per_arm_when_it_holds_gpus() -> None:
    from modeldeploy.serving.metrics import ArmMetrics

    clock = FakeClock()
    meter = GpuMeter(GpuDevices(2, "nvml"), clock, synchronize=lambda: None)
    registry = CollectorRegistry()
    metrics = ArmMetrics("d", "3", "canary", ["neg", "pos"], registry, gpu=meter)
    ArmMetrics("d", "3", "canary", ["neg", "pos"], registry, gpu=meter)  # bound once

    def forward(ids: np.ndarray, mask: np.ndarray) -> np.ndarray:
        clock.now += 0.25
        return ids

    clock.now += 10.0
    metrics.timed_forward(forward)(np.zeros(1), np.zeros(1))
    get = registry.get_sample_value
    assert get(n.GPU_ALLOCATED_SECONDS, LABELS) == pytest.approx(2 * 10.25)
    assert get(n.GPU_BUSY_SECONDS, LABELS) == pytest.approx(0.25)
    assert get(n.GPU_DEVICES, LABELS) == 2
    names = [s.name for f in registry.collect() for s in f.samples]
    assert names.count(n.GPU_ALLOCATED_SECONDS) == 1


def test_a_process_without_gpus_exports_no_gpu_series() -> None:
    from modeldeploy.serving.metrics import ArmMetrics

    registry = CollectorRegistry()
    metrics = ArmMetrics("d", "3", "canary", ["neg", "pos"], registry)

    def forward(ids: np.ndarray, mask: np.ndarray) -> np.ndarray:
        return ids

    assert metrics.timed_forward(forward) is forward
    names = {s.name for f in registry.collect() for s in f.samples}
    assert not {n.GPU_ALLOCATED_SECONDS, n.GPU_BUSY_SECONDS, n.GPU_DEVICES} & names
    assert n.CPU_SECONDS in names
