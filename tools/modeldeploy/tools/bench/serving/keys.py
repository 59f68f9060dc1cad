"""Which key of ``bench/results.json`` a serving run belongs under: chosen by the CPU.

The serving figures depend on the CPU's features: where it has bf16 matrix units (AMX or
AVX-512 bf16) the predictors serve bf16 and the ceiling is bf16's; elsewhere everything is
fp32. A run on one kind of CPU must therefore never replace the other kind's figures, which
is what a fixed key did: ``make bench`` on an AVX2 machine overwrote the AMX run the README
quotes. So ``make bench`` (and the module CLI, unless given ``--key``) writes a bf16 CPU's
run under ``serving``, as the issue that defined the suite asks, and any other CPU's under a
key that names its class.
"""

from __future__ import annotations

from collections.abc import Iterable

from modeldeploy.serving.backends.hardware import BF16_CPU_FLAGS

BF16_KEY = "serving"
AVX2_KEY = "serving_avx2"
OTHER_KEY = "serving_fp32"
"""A CPU with neither bf16 units nor AVX2 (an old or emulated one)."""


def results_key(cpu_flags: Iterable[str]) -> str:
    """The results key for a serving run on a CPU with these ``/proc/cpuinfo`` flags."""
    flags = frozenset(cpu_flags)
    if flags & BF16_CPU_FLAGS:
        return BF16_KEY
    return AVX2_KEY if "avx2" in flags else OTHER_KEY


def this_machine_key() -> str:
    """:func:`results_key` for the CPU this process runs on."""
    from modeldeploy.serving.backends.hardware import cpu_flags

    return results_key(cpu_flags())
