"""A real CUDA device: GPU accounting (the torch path of ``serving/gpu.py``) end to end, and
the reduced precisions (bf16, fp16) a GPU predictor serves only after the parity gate.

Marked ``gpu``: ``make test`` deselects these (CI has no GPU) and ``make test-gpu`` runs
them on a GPU node, where a missing CUDA device fails them rather than skipping. The CPU
half of the contract (no GPU series on a CPU process) is
tests/integration/serving/test_gpu_series.py.

The torch calls and what their documentation promises:
``torch.cuda.device_count()`` "Return the number of GPUs available" (the CUDA runtime's count,
which only includes the devices ``CUDA_VISIBLE_DEVICES`` leaves visible);
``torch.cuda.synchronize()`` "Wait for all kernels in all streams on a CUDA device to
complete"; ``torch.cuda.Event(enable_timing=True)`` with ``elapsed_time`` in milliseconds
between two recorded events, used here as the independent measure of device time.
"""

from __future__ import annotations

import re
import sys
import time
from pathlib import Path

import httpx
import numpy as np
import pytest
import torch

from modeldeploy.serving import gpu
from modeldeploy.serving.contract import names
from tests.integration.serving.conftest import start_predictor
from tests.integration.serving.scrape import scrape, value

pytestmark = [pytest.mark.slow, pytest.mark.gpu]


@pytest.fixture(autouse=True)
def _cuda_device() -> None:
    """These tests are about a GPU: on a node without one they fail, they never skip."""
    if not torch.cuda.is_available():
        pytest.fail("needs a CUDA GPU (torch.cuda.is_available() is false); run on a GPU node")


def _batch(rows: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    ids = np.random.default_rng(0).integers(1000, 2000, size=(rows, width), dtype=np.int64)
    return ids, np.ones_like(ids)


def test_the_meter_counts_the_visible_gpus_and_times_forward_passes(tiny_checkpoint: Path) -> None:
    from modeldeploy.serving.backends.torch_backend import TorchBackend

    backend = TorchBackend(tiny_checkpoint, 1, "fp32", "cuda")
    started = time.perf_counter()
    meter = gpu.meter_for("cuda")
    assert meter is not None
    assert meter.count == torch.cuda.device_count() >= 1
    logits = meter.timed(backend.logits)
    ids, mask = _batch(32, 64)
    logits(ids, mask)  # warm-up: CUDA context, kernels
    warm = meter.busy_seconds()
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    start.record()
    for _ in range(20):
        out = logits(ids, mask)
    end.record()
    end.synchronize()
    device_seconds = start.elapsed_time(end) / 1000.0
    busy = meter.busy_seconds() - warm
    assert out.shape == (32, 2) and np.isfinite(out).all()
    # Launch-to-synchronize covers the device time, plus the host's share of each pass.
    assert busy >= device_seconds * 0.95
    wall = time.perf_counter() - started
    assert busy <= wall
    assert meter.allocated_seconds() == pytest.approx(meter.count * wall, rel=0.05)


def test_cuda_visible_devices_restricts_the_count_torch_reports() -> None:
    """In a fresh process, as the device plugin would start it: one device visible."""
    import subprocess

    code = (
        "from modeldeploy.serving import gpu; import torch; "
        "print(gpu.detect(probes=[gpu.torch_devices]).count)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        env={**__import__("os").environ, "CUDA_VISIBLE_DEVICES": "0"},
        capture_output=True,
        text=True,
        check=True,
    )
    assert out.stdout.strip() == "1"


def test_a_gpu_predictor_exports_what_it_holds_and_computes(
    tiny_checkpoint: Path, tmp_path: Path
) -> None:
    predictor = start_predictor(
        tmp_path,
        tiny_checkpoint,
        ["--deployment", "gpu-demo", "--role", "stable", "--model-version", "1"],
        name="gpu-predictor",
        env={"CUDA_VISIBLE_DEVICES": "0"},
        timeout=300,
    )
    url = predictor.url
    try:
        with httpx.Client(timeout=30) as client:
            for i in range(50):
                client.post(
                    f"{url}/v1/models/classifier:predict", json={"instances": [f"text {i}"] * 8}
                )
        samples = scrape(url)
        labels = {"deployment": "gpu-demo", "model_version": "1", "role": "stable"}
        assert value(samples, names.GPU_DEVICES, **labels) == 1
        busy = value(samples, names.GPU_BUSY_SECONDS, **labels)
        allocated = value(samples, names.GPU_ALLOCATED_SECONDS, **labels)
        assert 0 < busy < allocated
    finally:
        predictor.process.stop()


# The reduced precisions a CUDA predictor may serve, behind the same 0.5-point parity gate as
# bf16 on a CPU (docs/serving.md, "Precision"): ``auto`` picks bf16 where the GPU has it
# (every GPU since Ampere), and ``fp16`` is the explicit choice for older ones.
CUDA_PRECISIONS = [("auto", "bf16"), ("fp16", "fp16")]
DEVICE = "cuda"
GATE = re.compile(r"drop [+-]\d\.\d{4} within the tolerance 0\.0050")


@pytest.mark.parametrize(("precision", "expected"), CUDA_PRECISIONS)
def test_a_reduced_precision_on_cuda_is_served_after_the_parity_gate_admits_it(
    precision: str, expected: str, tmp_path: Path
) -> None:
    """MiniLM (``good``), a real predictor: the reduced precision on the GPU, admitted by
    the gate against fp32 on the same GPU over the validation split, then answering."""
    from modeldeploy.tools.checkpoints import build

    predictor = start_predictor(
        tmp_path,
        build("good"),
        ["--precision", precision],  # after the fixture's fp32: the last one counts
        name=f"gpu-{precision}",
        env={"CUDA_VISIBLE_DEVICES": "0"},
        timeout=600,
    )
    try:
        log = predictor.process.log_path.read_text(errors="replace")
        assert f"torch on {DEVICE} at {expected}" in log, log[-3000:]
        assert GATE.search(log), log[-3000:]
        assert "falling back to fp32" not in log
        texts = ["a moving, funny film", "dull and far too long", "not bad at all"] * 4
        answer = httpx.post(predictor.v1, json={"instances": texts}, timeout=60)
        assert answer.status_code == 200, answer.text
        predictions = answer.json()["predictions"]
        assert len(predictions) == len(texts)
        for p in predictions:
            probabilities = list(p["probabilities"].values())
            assert all(np.isfinite(probabilities)) and abs(sum(probabilities) - 1) < 1e-3
    finally:
        predictor.process.stop()
