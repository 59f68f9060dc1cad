"""Precision and device selection: read from the hardware, admitted only by the parity gate."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import ClassVar

import numpy as np
import pytest

from modeldeploy.serving.backends import factory, hardware
from modeldeploy.serving.backends.base import ParityFailed
from modeldeploy.serving.backends.hardware import Hardware, choose, cpu_flags

SAPPHIRE = frozenset({"avx512f", "avx512_bf16", "amx_bf16", "amx_tile", "amx_int8"})
SKYLAKE = frozenset({"avx2", "avx512f", "avx512bw"})


def test_cpu_flags_come_from_cpuinfo(tmp_path):
    info = tmp_path / "cpuinfo"
    info.write_text("processor\t: 0\nflags\t\t: fpu avx512f amx_bf16\n\nprocessor\t: 1\n")
    assert cpu_flags(info) == {"fpu", "avx512f", "amx_bf16"}
    assert cpu_flags(tmp_path / "missing") == frozenset()


@pytest.mark.parametrize(
    ("hw", "expected"),
    [
        (Hardware(SAPPHIRE), ("cpu", "bf16")),
        (Hardware(frozenset({"avx512_bf16"})), ("cpu", "bf16")),
        (Hardware(SKYLAKE), ("cpu", "fp32")),
        (Hardware(frozenset()), ("cpu", "fp32")),
        (Hardware(SKYLAKE, cuda=True, cuda_bf16=True), ("cuda", "bf16")),
        (Hardware(SAPPHIRE, cuda=True, cuda_bf16=False), ("cuda", "fp16")),
    ],
)
def test_auto_picks_the_hardwares_precision(hw, expected):
    choice = choose("auto", hw)
    assert (choice.device, choice.precision) == expected and choice.automatic


def test_an_explicit_precision_is_honoured_and_unknown_ones_refused():
    choice = choose("fp32", Hardware(SAPPHIRE))
    assert (choice.precision, choice.automatic) == ("fp32", False)
    with pytest.raises(ValueError, match="unknown precision 'int4'"):
        choose("int4", Hardware(SAPPHIRE))


class FakeTorchBackend:
    """Records how the factory built it; predicts class 0 except where told to be wrong."""

    built: ClassVar[list[tuple[str, str]]] = []
    layouts: ClassVar[list[bool]] = []  # packs? per backend built
    wrong_share: ClassVar[dict[str, float]] = {"fp32": 0.0}

    def __init__(self, model_dir, threads, precision, device, cache_dir, pack_row_tokens=0):
        self.precision, self.device = precision, device
        self.runtime = f"torch-{device}-{precision}"
        self.packs, self.row_tokens = pack_row_tokens > 0, pack_row_tokens
        FakeTorchBackend.layouts.append(self.packs)
        FakeTorchBackend.built.append((device, precision))

    def logits(self, ids: np.ndarray, mask: np.ndarray) -> np.ndarray:
        wrong = self.wrong_share.get(self.precision, 0.0)
        out = np.tile([1.0, 0.0], (len(ids), 1))
        out[ids[:, 0] < wrong * 1000] = [0.0, 1.0]  # first token decides who is "wrong"
        return out


class FakeEncoder:
    pad_id = 0

    def encode(self, texts):
        return [SimpleNamespace(ids=[int(t)], truncated=False) for t in texts]


@pytest.fixture
def gpu_node(monkeypatch, tmp_path):
    """A node whose torch sees a bf16-capable GPU; held-out split of 1000 label-0 texts."""
    from modeldeploy.serving.backends import onnx_backend, torch_backend

    FakeTorchBackend.built, FakeTorchBackend.layouts = [], []
    monkeypatch.setattr(hardware, "detect", lambda with_cuda: Hardware(SKYLAKE, True, True))
    monkeypatch.setattr(torch_backend, "TorchBackend", FakeTorchBackend)
    monkeypatch.setattr(onnx_backend, "artifact_dir", lambda _d: tmp_path)
    monkeypatch.setattr(
        factory, "_validation_split", lambda: ([str(i) for i in range(1000)], [0] * 1000)
    )
    return tmp_path


def _load(precision: str):
    return factory.load_backend(Path("m"), "torch", 2, FakeEncoder(), 0.01, precision=precision)


def test_on_a_gpu_node_auto_runs_bf16_on_cuda_behind_the_gate(gpu_node):
    FakeTorchBackend.wrong_share = {"fp32": 0.0, "bf16": 0.004}
    backend, report = _load("auto")
    assert (backend.device, backend.precision) == ("cuda", "bf16")
    assert report is not None and report.passed and report.tolerance == 0.005
    assert report.drop == pytest.approx(0.004)
    assert FakeTorchBackend.built == [("cuda", "bf16"), ("cuda", "fp32")]  # fp32 = reference
    assert list(gpu_node.glob("*.parity-0.005.json"))  # cached for the next start


def test_auto_falls_back_to_fp32_when_the_reduced_precision_costs_too_much(gpu_node):
    FakeTorchBackend.wrong_share = {"fp32": 0.0, "bf16": 0.02}
    messages: list[str] = []
    backend, report = factory.load_backend(
        Path("m"), "torch", 2, FakeEncoder(), 0.01, messages.append, "auto"
    )
    assert (backend.device, backend.precision, report) == ("cuda", "fp32", None)
    assert any("EXCEEDS" in m and "falling back to fp32" in m for m in messages)


def test_an_explicit_reduced_precision_that_costs_too_much_refuses_to_start(gpu_node):
    FakeTorchBackend.wrong_share = {"fp32": 0.0, "fp16": 0.02}
    with pytest.raises(ParityFailed, match=r"EXCEEDS the tolerance 0\.0050"):
        _load("fp16")


def test_fp32_needs_no_gate(gpu_node):
    backend, report = _load("fp32")
    assert (backend.precision, report) == ("fp32", None)
    assert FakeTorchBackend.built == [("cuda", "fp32")]


@pytest.fixture
def amx_node(gpu_node, monkeypatch):
    """The same, on a CPU-only node with AMX and AVX-512 bf16 (the benchmark's machines)."""
    monkeypatch.setattr(hardware, "detect", lambda with_cuda: Hardware(SAPPHIRE))
    return gpu_node


def test_on_an_amx_cpu_auto_runs_bf16_only_within_half_a_point(amx_node):
    FakeTorchBackend.wrong_share = {"fp32": 0.0, "bf16": 0.005}  # exactly 0.5 points: admitted
    backend, report = _load("auto")
    assert (backend.device, backend.precision) == ("cpu", "bf16")
    assert report is not None and report.drop == pytest.approx(0.005)


def test_on_an_amx_cpu_a_bf16_that_costs_more_than_half_a_point_is_refused(amx_node):
    FakeTorchBackend.wrong_share = {"fp32": 0.0, "bf16": 0.006}
    backend, report = _load("auto")  # auto: served at fp32 instead
    assert (backend.device, backend.precision, report) == ("cpu", "fp32", None)
    for cached in amx_node.glob("*.parity-*.json"):
        cached.unlink()  # the explicit request judges again (no cached verdict)
    with pytest.raises(ParityFailed, match=r"EXCEEDS the tolerance 0\.0050"):
        _load("bf16")


def test_auto_is_the_default_everywhere_a_predictor_is_started():
    """Predictor CLI, the options both platforms write, and the operator's predictors."""
    import argparse

    from modeldeploy.serving.config import ServeConfig, add_arguments, from_args
    from modeldeploy.serving.contract.args import PredictorOptions, predictor_args

    parser = argparse.ArgumentParser()
    add_arguments(parser)
    assert from_args(parser.parse_args(["--model-dir", "m"])).precision == "auto"
    assert ServeConfig(source=None).precision == "auto"  # type: ignore[arg-type]
    options = PredictorOptions.from_registry("http://r", "m", "1", "d", "stable")
    assert options.precision == "auto"
    argv = predictor_args(options)
    assert "--precision" not in argv  # left to the predictor's default, which is auto
    assert from_args(parser.parse_args(argv)).precision == "auto"


def test_a_packing_candidate_is_judged_against_the_padded_reference(amx_node):
    """Packing is part of what the gate admits: the candidate packs, the fp32 reference
    it is compared with is the plain padded model."""
    FakeTorchBackend.wrong_share = {"fp32": 0.0, "bf16": 0.001}
    messages: list[str] = []
    backend, report = factory.load_backend(
        Path("m"), "torch", 2, FakeEncoder(), 0.01, messages.append, "auto", pack_row_tokens=64
    )
    assert backend.packs and report is not None and report.passed
    assert FakeTorchBackend.built == [("cpu", "bf16"), ("cpu", "fp32")]
    assert FakeTorchBackend.layouts == [True, False]
    assert "torch layout: packed rows of 64 tokens" in messages
