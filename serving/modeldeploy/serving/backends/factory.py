"""Choose and prepare the backend named by configuration (the only place that knows all).

Every runtime other than the fp32 torch reference is admitted by the accuracy parity
gate (:mod:`parity`) on the held-out validation split. Reduced precisions (bf16, fp16,
INT8) must stay within :data:`REDUCED_PRECISION_TOLERANCE` (0.5 accuracy points) of
fp32, or the configured tolerance if that is stricter. ``precision="auto"`` picks the
hardware's best (:mod:`hardware`) and, when that fails the gate, falls back to fp32
with a logged reason; an explicitly requested precision that fails refuses to start.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from pathlib import Path

from modeldeploy.serving.backends.base import RUNTIMES, Backend, ParityFailed
from modeldeploy.serving.backends.parity import ParityReport
from modeldeploy.serving.codecs import TextEncoder

Progress = Callable[[str], None]
REDUCED_PRECISION_TOLERANCE = 0.005
"""Largest held-out accuracy drop (0.5 points) a bf16, fp16 or INT8 path may cost."""


def _validation_split() -> tuple[list[str], list[int]]:
    """The held-out validation split (never the test split, which reports accuracy)."""
    from modeldeploy.serving.data import VALIDATION, held_out

    return held_out(VALIDATION)


def reduced_tolerance(tolerance: float) -> float:
    return min(tolerance, REDUCED_PRECISION_TOLERANCE)


def load_backend(
    model_dir: Path,
    runtime: str,
    threads: int,
    encoder: TextEncoder,
    tolerance: float = 0.01,
    progress: Progress | None = None,
    precision: str = "auto",
) -> tuple[Backend, ParityReport | None]:
    """The backend for ``runtime``; anything but fp32 torch only after the parity gate."""
    say = progress or (lambda _m: None)
    if runtime not in RUNTIMES:
        raise ValueError(f"unknown runtime {runtime!r}; choose one of {', '.join(RUNTIMES)}")
    if runtime == "torch":
        return _torch(model_dir, threads, encoder, tolerance, say, precision)

    from modeldeploy.serving.backends import onnx_backend, parity

    int8 = runtime == "onnx-int8"
    graph = onnx_backend.ensure_artifact(model_dir, int8=int8)
    backend = onnx_backend.OnnxBackend(graph, threads, runtime)
    gate = reduced_tolerance(tolerance) if int8 else tolerance

    def reference() -> Backend:
        from modeldeploy.serving.backends.torch_backend import TorchBackend

        say(f"checking {runtime} accuracy against torch on the validation split")
        return TorchBackend(model_dir, threads, "fp32", "cpu", graph.parent)

    report = parity.check(
        backend,
        reference,
        encoder,
        _validation_split,
        gate,
        cache_file=parity.verdict_path(graph, gate),
    )
    say(report.message())
    return backend, report


def _torch(
    model_dir: Path,
    threads: int,
    encoder: TextEncoder,
    tolerance: float,
    say: Progress,
    precision: str,
) -> tuple[Backend, ParityReport | None]:
    from modeldeploy.serving.backends import hardware, parity
    from modeldeploy.serving.backends.onnx_backend import artifact_dir
    from modeldeploy.serving.backends.torch_backend import TorchBackend, trace_path

    choice = hardware.choose(precision, hardware.detect(with_cuda=True))
    say(f"torch on {choice.device} at {choice.precision} ({choice.reason})")
    cache = artifact_dir(model_dir)
    with contextlib.suppress(OSError):  # the verdict is written there even without a trace
        cache.mkdir(parents=True, exist_ok=True)
    backend = TorchBackend(model_dir, threads, choice.precision, choice.device, cache)
    if choice.precision == "fp32":
        return backend, None

    def reference() -> Backend:
        say(f"checking {backend.runtime} accuracy against fp32 on the validation split")
        return TorchBackend(model_dir, threads, "fp32", choice.device, cache)

    gate = reduced_tolerance(tolerance)
    verdict = parity.verdict_path(trace_path(cache, f"{choice.device}-{choice.precision}"), gate)
    try:
        report = parity.check(backend, reference, encoder, _validation_split, gate, verdict)
    except ParityFailed as exc:
        if not choice.automatic:
            raise
        say(f"{exc}; falling back to fp32")
        return TorchBackend(model_dir, threads, "fp32", choice.device, cache), None
    say(report.message())
    return backend, report
