"""Choose and prepare the backend named by configuration (the only place that knows all)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from modeldeploy.serving.backends.base import RUNTIMES, Backend
from modeldeploy.serving.backends.parity import ParityReport
from modeldeploy.serving.codecs import TextEncoder

Progress = Callable[[str], None]


def _validation_split() -> tuple[list[str], list[int]]:
    """The held-out validation split (never the test split, which reports accuracy)."""
    from modeldeploy.serving.data import VALIDATION, held_out

    return held_out(VALIDATION)


def load_backend(
    model_dir: Path,
    runtime: str,
    threads: int,
    encoder: TextEncoder,
    tolerance: float = 0.01,
    progress: Progress | None = None,
) -> tuple[Backend, ParityReport | None]:
    """The backend for ``runtime``; ONNX ones only after they pass the parity check."""
    say = progress or (lambda _m: None)
    if runtime not in RUNTIMES:
        raise ValueError(f"unknown runtime {runtime!r}; choose one of {', '.join(RUNTIMES)}")
    if runtime == "torch":
        from modeldeploy.serving.backends.torch_backend import TorchBackend

        return TorchBackend(model_dir, threads), None

    from modeldeploy.serving.backends import onnx_backend, parity

    graph = onnx_backend.ensure_artifact(model_dir, int8=runtime == "onnx-int8")
    backend = onnx_backend.OnnxBackend(graph, threads, runtime)

    def reference() -> Backend:
        from modeldeploy.serving.backends.torch_backend import TorchBackend

        say(f"checking {runtime} accuracy against torch on the validation split")
        return TorchBackend(model_dir, threads)

    report = parity.check(
        backend,
        reference,
        encoder,
        _validation_split,
        tolerance,
        cache_file=parity.verdict_path(graph, tolerance),
    )
    say(report.message())
    return backend, report
