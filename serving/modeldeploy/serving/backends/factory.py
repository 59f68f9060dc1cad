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
from typing import TYPE_CHECKING

from modeldeploy.serving.backends.base import RUNTIMES, Backend, ParityFailed
from modeldeploy.serving.backends.parity import ParityReport
from modeldeploy.serving.codecs import TextEncoder

if TYPE_CHECKING:
    from modeldeploy.serving.backends.onnx_backend import OnnxBackend
    from modeldeploy.serving.backends.torch_backend import TorchBackend

Progress = Callable[[str], None]


REDUCED_PRECISION_TOLERANCE = 0.005
"""Largest held-out accuracy drop (0.5 points) a bf16, fp16 or INT8 path may cost."""


def _validation_split() -> tuple[list[str], list[int]]:
    """The held-out validation split (never the test split, which reports accuracy)."""
    from modeldeploy.serving.data import VALIDATION, held_out

    return held_out(VALIDATION)


def _validation_text() -> str:
    """The validation file as shipped: its digest keys every cached verdict."""
    from modeldeploy.serving.data import VALIDATION, read_text

    return read_text(VALIDATION)


def _verdict_key(
    model_dir: Path,
    encoder: TextEncoder,
    tolerance: float,
    candidate: dict[str, object],
    reference: dict[str, object],
) -> dict[str, object]:
    from modeldeploy.serving.backends.cache import file_sha256
    from modeldeploy.serving.backends.parity import verdict_key

    tokenizer = model_dir / "tokenizer.json"
    policy = getattr(encoder, "policy", None)  # any encoder with TextEncoder's fields
    described = {
        "tokenizer": file_sha256(tokenizer) if tokenizer.is_file() else None,
        "max_length": getattr(policy, "max_length", None),
        "token_types": getattr(encoder, "token_types", None),
        "pad_id": encoder.pad_id,
    }
    return verdict_key(candidate, reference, described, _validation_text(), tolerance)


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
    pack_row_tokens: int = 0,
) -> tuple[Backend, ParityReport | None]:
    """The backend for ``runtime``; anything but fp32 torch only after the parity gate.

    ``pack_row_tokens`` > 0 lets the torch runtime on CPU and the ONNX runtimes pack each
    batch into rows of that many tokens (:mod:`packing`); the parity reference is always
    the padded model.
    """
    say = progress or (lambda _m: None)
    if runtime not in RUNTIMES:
        raise ValueError(f"unknown runtime {runtime!r}; choose one of {', '.join(RUNTIMES)}")
    if runtime == "torch":
        return _torch(model_dir, threads, encoder, tolerance, say, precision, pack_row_tokens)

    from modeldeploy.serving.backends import cache, onnx_backend, parity

    int8 = runtime == "onnx-int8"
    folder = onnx_backend.artifact_dir(model_dir)
    source = onnx_backend.graph_path(folder, int8, packed=pack_row_tokens > 0)
    # Both cached graphs are verified below; hash them side by side, outside the GIL.
    cache.prefetch_digests([source, onnx_backend.optimized_path(source)])
    backend = onnx_backend.open_backend(model_dir, runtime, threads, pack_row_tokens)
    say(_layout(backend))
    graph = backend.graph
    gate = reduced_tolerance(tolerance) if int8 else tolerance
    key = _verdict_key(
        model_dir,
        encoder,
        gate,
        candidate={
            "runtime": runtime,
            "graph": cache.recorded_sha256(graph),
            "onnxruntime": cache.library_version("onnxruntime"),
        },
        reference=_reference(graph.parent, "cpu"),
    )

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
        cache_key=key,
    )
    say(report.message())
    return backend, report


def _reference(cache_dir: Path, device: str) -> dict[str, object]:
    """The fp32 torch reference: the weights (the cache folder is their digest) and torch."""
    from modeldeploy.serving.backends.cache import library_version

    return {
        "runtime": "torch",
        "precision": "fp32",
        "device": device,
        "weights": cache_dir.name,
        "torch": library_version("torch"),
    }


def _torch(
    model_dir: Path,
    threads: int,
    encoder: TextEncoder,
    tolerance: float,
    say: Progress,
    precision: str,
    pack_row_tokens: int = 0,
) -> tuple[Backend, ParityReport | None]:
    from modeldeploy.serving.backends import hardware, parity
    from modeldeploy.serving.backends.cache import prefetch_digests
    from modeldeploy.serving.backends.onnx_backend import artifact_dir
    from modeldeploy.serving.backends.torch_backend import TorchBackend, trace_path

    cache = artifact_dir(model_dir)
    # The CPU's choice is known before torch is imported (only CUDA needs torch to tell):
    # verify that trace's digest on the other core while torch imports.
    likely = hardware.choose(precision, hardware.Hardware(hardware.cpu_flags()))
    prefetch_digests([trace_path(cache, likely.precision, packed=pack_row_tokens > 0)])
    choice = hardware.choose(precision, hardware.detect(with_cuda=True))
    say(f"torch on {choice.device} at {choice.precision} ({choice.reason})")
    with contextlib.suppress(OSError):  # the verdict is written there even without a trace
        cache.mkdir(parents=True, exist_ok=True)
    backend = TorchBackend(
        model_dir, threads, choice.precision, choice.device, cache, pack_row_tokens
    )
    say(_layout(backend))
    if choice.precision == "fp32":
        return backend, None

    def reference() -> Backend:
        say(f"checking {backend.runtime} accuracy against fp32 on the validation split")
        return TorchBackend(model_dir, threads, "fp32", choice.device, cache)

    gate = reduced_tolerance(tolerance)
    layout = trace_path(cache, f"{choice.device}-{choice.precision}", packed=backend.packs)
    verdict = parity.verdict_path(layout, gate)  # one verdict per layout: both may be served
    key = _verdict_key(
        model_dir,
        encoder,
        gate,
        candidate={
            "runtime": backend.runtime,
            "precision": choice.precision,
            "device": choice.device,
            "gpu": _gpu_name(choice.device),
            "graph": _trace_digest(backend),
        },
        reference=_reference(cache, choice.device),
    )
    try:
        report = parity.check(backend, reference, encoder, _validation_split, gate, verdict, key)
    except ParityFailed as exc:
        if not choice.automatic:
            raise
        say(f"{exc}; falling back to fp32")
        fallback = TorchBackend(model_dir, threads, "fp32", choice.device, cache, pack_row_tokens)
        say(_layout(fallback))
        return fallback, None
    say(report.message())
    return backend, report


def _layout(backend: TorchBackend | OnnxBackend) -> str:
    """One line for the log (the benchmark reads it): how a batch reaches the model."""
    name = "torch" if backend.runtime.startswith("torch") else backend.runtime
    if backend.packs:
        return f"{name} layout: packed rows of {backend.row_tokens} tokens"
    return f"{name} layout: padded batches"


def _trace_digest(backend: Backend) -> str:
    """The SHA-256 of the trace that runs (recorded when it was verified), or ``eager``."""
    from modeldeploy.serving.backends.cache import recorded_sha256

    trace = getattr(backend, "trace", None)
    return recorded_sha256(trace) if trace is not None else "eager"


def _gpu_name(device: str) -> str | None:
    """The GPU's model: a verdict on one GPU says nothing about another's kernels."""
    if device != "cuda":
        return None
    import torch

    return str(torch.cuda.get_device_name()) if torch.cuda.is_available() else None
