"""malloc keeps what a pass frees: the settings, who wins, and the page faults they save."""

from __future__ import annotations

import subprocess
import sys

import pytest

from modeldeploy.serving import allocator


class _Libc:
    def __init__(self, accepts: bool = True) -> None:
        self.calls: list[tuple[int, int]] = []
        self.accepts = accepts

    def mallopt(self, parameter, value) -> int:
        self.calls.append((parameter.value, value.value))
        return 1 if self.accepts else 0


def test_both_thresholds_are_set_through_mallopt():
    libc = _Libc()
    applied = allocator.keep_freed_memory({}, libc)
    assert libc.calls == [
        (allocator.M_MMAP_THRESHOLD, 32 * 1024 * 1024),
        (allocator.M_TRIM_THRESHOLD, 256 * 1024 * 1024),
    ]
    assert applied == {"mmap_threshold": 32 << 20, "trim_threshold": 256 << 20}
    assert allocator.describe(applied) == "malloc: mmap_threshold 32 MiB, trim_threshold 256 MiB"


@pytest.mark.parametrize("name", allocator.OPERATOR_SETTINGS)
def test_an_operators_malloc_environment_wins(name):
    libc = _Libc()
    assert allocator.keep_freed_memory({name: "1"}, libc) == {}
    assert libc.calls == []  # nothing touched


def test_a_refused_setting_is_not_reported_and_no_libc_means_nothing():
    assert allocator.keep_freed_memory({}, _Libc(accepts=False)) == {}
    assert allocator.keep_freed_memory({}, object()) == {}  # no mallopt (not glibc)
    assert "defaults" in allocator.describe({})


_FAULTS = """
import os, resource, sys
import numpy as np
for name in ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_", "GLIBC_TUNABLES"):
    os.environ.pop(name, None)
if sys.argv[1] == "keep":
    from modeldeploy.serving import allocator
    assert allocator.keep_freed_memory()
def one_pass():  # what a forward pass does to memory: activations alive together, then freed
    blocks = [np.ones(3 << 18, dtype=np.float32) for _ in range(8)]  # 8 x 3 MiB, written
    del blocks
one_pass()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(50):
    one_pass()
print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


def _faults(mode: str) -> int:
    out = subprocess.run(
        [sys.executable, "-c", _FAULTS, mode], capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stderr
    return int(out.stdout.split()[-1])


def test_freed_memory_is_reused_without_faulting_its_pages_in_again():
    """By default glibc gives the 24 MiB a pass freed back to the kernel (past its dynamic
    trim threshold), so every pass faults about 6,000 pages in again; kept, they fault once."""
    default, kept = _faults("default"), _faults("keep")
    assert default >= 50 * 3000, default
    assert kept < default / 20, (kept, default)
