"""GPU accounting of one predictor process: what it holds (billed) and what it computes (busy).

A GPU is billed while it is allocated, not while it is busy, so the cost figure is
``GPUs held x wall seconds`` (``modeldeploy_gpu_allocated_seconds_total``), and the
device time of the forward passes (``modeldeploy_gpu_busy_seconds_total``) says how much of
that was used. Both start when the process starts: the model load holds the GPU too.

Which GPUs the process holds is read once at start, from the devices visible to it:

* NVML (``pynvml``, the ``nvidia-ml-py`` package), when installed: the driver's device count
  restricted by ``CUDA_VISIBLE_DEVICES`` (NVML itself ignores that variable);
* else torch, when the process already imported it (a torch backend):
  ``torch.cuda.device_count()``, which the CUDA runtime already restricts to the visible
  devices. A process that never imported torch does not import it here (start-up time).

In a Kubernetes pod the NVIDIA device plugin exposes exactly the ``nvidia.com/gpu`` the
container was allocated, so the count is the allocation. Outside one (local mode on a
workstation) set ``CUDA_VISIBLE_DEVICES`` per predictor, or every arm counts every GPU.

Everything that touches a device is behind :data:`Probe` and the ``synchronize`` callable,
so tests run the accounting with a fake device set and a fake clock.

The device calls follow their documentation: ``torch.cuda.device_count()`` ("Return the
number of GPUs available"; it does not poison fork when NVML discovery succeeds),
``torch.cuda.synchronize()`` ("Wait for all kernels in all streams on a CUDA device to
complete", current device by default), both at docs.pytorch.org; the ``CUDA_VISIBLE_DEVICES``
rules of the CUDA Programming Guide, "CUDA Environment Variables"; and nvidia-ml-py's
``nvmlInit`` / ``nvmlDeviceGetCount`` / ``nvmlShutdown``, which raise ``NVMLError`` on failure.
"""

from __future__ import annotations

import logging
import os
import re
import sys
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from types import ModuleType
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np

log = logging.getLogger(__name__)

VISIBLE_ENV = "CUDA_VISIBLE_DEVICES"
_UUID = re.compile(r"^(GPU|MIG)-[0-9A-Za-z/-]+$")

LogitsFn = Callable[["np.ndarray", "np.ndarray"], "np.ndarray"]
Clock = Callable[[], float]


@dataclass(frozen=True)
class GpuDevices:
    """The GPUs this process holds: how many, and who said so (``nvml``, ``torch``, ``none``)."""

    count: int = 0
    source: str = "none"

    def __post_init__(self) -> None:
        if self.count < 0:
            raise ValueError("a GPU count cannot be negative")


Probe = Callable[[Mapping[str, str]], GpuDevices | None]
"""Reads the devices from the environment given; None: this probe cannot tell."""


def visible_count(total: int, visible: str | None) -> int:
    """How many of ``total`` devices ``CUDA_VISIBLE_DEVICES`` leaves visible.

    The CUDA rules (CUDA Programming Guide, "CUDA Environment Variables"): unset, all;
    empty, none; else a comma-separated list of indices or UUIDs (``GPU-...``, ``MIG-...``),
    where an invalid index hides itself and every entry after it. A UUID cannot be checked
    without the driver's UUID list, so it counts as one device; repeats count once.
    """
    if visible is None:
        return total
    seen: set[str] = set()
    for raw in visible.split(","):
        entry = raw.strip()
        if entry.isdigit() and int(entry) < total:
            seen.add(str(int(entry)))
        elif _UUID.match(entry):
            seen.add(entry)
        else:
            break
    return min(len(seen), total)


def nvml_devices(env: Mapping[str, str], nvml: ModuleType | None = None) -> GpuDevices | None:
    """The NVML count (``nvmlInit``, ``nvmlDeviceGetCount``, ``nvmlShutdown``) restricted by
    ``CUDA_VISIBLE_DEVICES``; None without ``pynvml`` or when NVML finds no driver."""
    if nvml is None:
        try:
            import pynvml  # type: ignore[import-not-found]
        except ImportError:
            return None
        nvml = pynvml
    try:
        nvml.nvmlInit()
        try:
            total = int(nvml.nvmlDeviceGetCount())
        finally:
            nvml.nvmlShutdown()
    except Exception as exc:  # pynvml.NVMLError: no driver, no device node, a broken install
        log.info("NVML cannot count GPUs (%s)", exc)
        return None
    return GpuDevices(visible_count(total, env.get(VISIBLE_ENV)), "nvml")


def torch_devices(env: Mapping[str, str], torch: Any = None) -> GpuDevices | None:
    """``torch.cuda.device_count()`` (0 without CUDA) when torch is already imported; None
    otherwise. torch's count already honours ``CUDA_VISIBLE_DEVICES``, so ``env`` is unused."""
    del env
    if torch is None:
        torch = sys.modules.get("torch")
        if torch is None:
            return None
    if not torch.cuda.is_available():
        return GpuDevices(0, "torch")
    return GpuDevices(int(torch.cuda.device_count()), "torch")


PROBES: tuple[Probe, ...] = (nvml_devices, torch_devices)


def detect(env: Mapping[str, str] | None = None, probes: Iterable[Probe] = PROBES) -> GpuDevices:
    """The devices the first probe that can tell reports; none when no probe can."""
    env = os.environ if env is None else env
    for probe in probes:
        found = probe(env)
        if found is not None:
            return found
    return GpuDevices()


def torch_synchronize(torch: Any = None) -> Callable[[], None]:
    """``torch.cuda.synchronize()``: waits for every kernel queued on the current device,
    so the time up to its return is the device time of what was launched before it."""
    if torch is None:
        import torch
    return torch.cuda.synchronize  # type: ignore[no-any-return]


class GpuMeter:
    """Allocated and busy GPU seconds of one process; read at scrape, added in the
    inference thread (hence the lock).

    ``held_for``: seconds the process already held the GPUs when the meter was made (its
    age: interpreter start and model load are paid for too). ``synchronize``: waits for the
    device, or None when the forward pass does not run on a GPU (then nothing is busy, and
    an allocated GPU that is never busy is exactly what the idle alert is for).
    """

    def __init__(
        self,
        devices: GpuDevices,
        clock: Clock = time.perf_counter,
        held_for: float = 0.0,
        synchronize: Callable[[], None] | None = None,
    ) -> None:
        self.devices = devices
        self._clock = clock
        self._since = clock() - max(0.0, held_for)
        self._synchronize = synchronize
        self._busy = 0.0
        self._lock = threading.Lock()

    @property
    def count(self) -> int:
        return self.devices.count

    def allocated_seconds(self) -> float:
        """GPUs held x wall seconds since the process started."""
        return self.devices.count * max(0.0, self._clock() - self._since)

    def busy_seconds(self) -> float:
        """Device seconds of the forward passes so far (launch to synchronize)."""
        with self._lock:
            return self._busy

    def timed(self, logits: LogitsFn) -> LogitsFn:
        """``logits`` timed from launch to the device's synchronize; unchanged when the
        forward pass does not run on a GPU."""
        synchronize = self._synchronize
        if synchronize is None or self.devices.count == 0:
            return logits
        clock = self._clock

        def run(input_ids: np.ndarray, attention_mask: np.ndarray) -> np.ndarray:
            start = clock()
            try:
                out = logits(input_ids, attention_mask)
                synchronize()
                return out
            finally:
                elapsed = clock() - start
                with self._lock:
                    self._busy += max(0.0, elapsed)

        return run


def meter_for(
    backend_device: str,
    held_for: float = 0.0,
    env: Mapping[str, str] | None = None,
    probes: Iterable[Probe] = PROBES,
) -> GpuMeter | None:
    """The meter of a process whose forward pass runs on ``backend_device`` (``cpu`` or
    ``cuda``); None when it holds no GPU (then no GPU series is exported at all)."""
    devices = detect(env, probes)
    if devices.count == 0:
        return None
    sync = torch_synchronize() if backend_device == "cuda" else None
    log.info(
        "GPU accounting: %d GPU(s) held (from %s); forward passes %s",
        devices.count,
        devices.source,
        "timed on cuda" if sync else "run on the CPU: the GPUs stay idle",
    )
    return GpuMeter(devices, held_for=held_for, synchronize=sync)
