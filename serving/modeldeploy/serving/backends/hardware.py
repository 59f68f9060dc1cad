"""Which device and numeric precision to run on: read from the hardware, never guessed.

Pure rules over a :class:`Hardware` description, so the choice is unit-tested with any
machine described (a GPU node, a CPU without bf16) and only :func:`detect` touches the
real one. Every reduced precision is still admitted only by the accuracy parity gate
(``backends.factory``); this module only says what is worth trying.

Why bf16 on CPUs with AMX or AVX-512 bf16: there the bf16 matrix units roughly double
MiniLM's throughput at equal held-out accuracy (measured in ``make bench``); without
them bf16 is emulated and slower than fp32. On CUDA, bf16 where the GPU supports it
(Ampere and later: same exponent range as fp32, no overflow), fp16 otherwise.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from modeldeploy.serving.contract.args import PRECISIONS

BF16_CPU_FLAGS = frozenset({"amx_bf16", "avx512_bf16"})


@dataclass(frozen=True)
class Hardware:
    cpu_flags: frozenset[str] = frozenset()
    cuda: bool = False
    cuda_bf16: bool = False


@dataclass(frozen=True)
class Choice:
    device: str  # "cpu" or "cuda"
    precision: str  # "fp32", "bf16" or "fp16"
    reason: str
    automatic: bool


def cpu_flags(cpuinfo: Path = Path("/proc/cpuinfo")) -> frozenset[str]:
    """The ``flags`` of the first CPU in ``/proc/cpuinfo`` (empty where there is none)."""
    try:
        text = cpuinfo.read_text()
    except OSError:
        return frozenset()
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() == "flags":
            return frozenset(value.split())
    return frozenset()


def detect(with_cuda: bool) -> Hardware:
    """The real machine. CUDA is only probed when torch is in use anyway (it imports torch)."""
    cuda = bf16 = False
    if with_cuda:
        import torch

        cuda = bool(torch.cuda.is_available())
        bf16 = cuda and bool(torch.cuda.is_bf16_supported())
    return Hardware(cpu_flags(), cuda, bf16)


def choose(requested: str, hardware: Hardware) -> Choice:
    """Device and precision for ``requested`` (one of :data:`PRECISIONS`) on ``hardware``."""
    if requested not in PRECISIONS:
        raise ValueError(f"unknown precision {requested!r}; choose one of {', '.join(PRECISIONS)}")
    device = "cuda" if hardware.cuda else "cpu"
    if requested != "auto":
        return Choice(device, requested, f"{requested} requested", automatic=False)
    if hardware.cuda:
        precision = "bf16" if hardware.cuda_bf16 else "fp16"
        why = "the GPU supports bf16" if hardware.cuda_bf16 else "the GPU lacks bf16"
        return Choice(device, precision, f"CUDA: {why}", automatic=True)
    found = sorted(BF16_CPU_FLAGS & hardware.cpu_flags)
    if found:
        return Choice("cpu", "bf16", f"CPU has {', '.join(found)}", automatic=True)
    return Choice("cpu", "fp32", "CPU has neither amx_bf16 nor avx512_bf16", automatic=True)
