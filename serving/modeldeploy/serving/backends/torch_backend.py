"""The torch backend: fp32 reference, bf16/fp16 autocast, CPU or CUDA.

On CPU the model runs as a TorchScript trace cached next to the exported ONNX graphs
(``$MODELDEPLOY_CACHE/compiled/<weights digest>/torch-<precision>.pt``): loading it needs
only ``import torch`` (no transformers, no ``from_pretrained``), which is most of what
keeps the torch runtime's cold start short. A trace is written once, from the eager
model, and kept only if it reproduces the eager model on a padded batch of another
shape than the one traced; otherwise (or on CUDA) the eager model serves. It is loaded
only when its record (:mod:`cache`) matches: same weights, precision and torch version,
and the file still hashes to what was written (a corrupt trace is rebuilt).

bf16 and fp16 are traced under ``torch.autocast``, so the casts are in the graph and
the weights stay fp32 (layer norms and softmax keep fp32 where autocast keeps them).
"""

from __future__ import annotations

import contextlib
import logging
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

log = logging.getLogger(__name__)

DTYPES = {"bf16": "bfloat16", "fp16": "float16"}
TRACE_TOLERANCE = {"fp32": 1e-4, "bf16": 2e-2, "fp16": 2e-2}


def configure_torch_threads(threads: int) -> None:
    """Intra-op threads = the cores we own; one inter-op thread (batches run one at a time)."""
    import torch

    torch.set_num_threads(max(1, threads))
    # Raises when already set, or once inter-op work has started in this process.
    with contextlib.suppress(RuntimeError):
        torch.set_num_interop_threads(1)


def runtime_name(precision: str, device: str) -> str:
    """``torch`` for the fp32 CPU reference, else e.g. ``torch-bf16`` / ``torch-cuda-fp16``."""
    if device == "cpu":
        return "torch" if precision == "fp32" else f"torch-{precision}"
    return f"torch-{device}-{precision}"


def _autocast(torch: Any, device: str, precision: str) -> Any:
    if precision == "fp32":
        return contextlib.nullcontext()
    return torch.autocast(device, dtype=getattr(torch, DTYPES[precision]))


def _eager(model_dir: Path) -> Any:
    from transformers import AutoModelForSequenceClassification

    return AutoModelForSequenceClassification.from_pretrained(model_dir).eval()


def _probe_batch(torch: Any, rows: list[int], vocab: int) -> tuple[Any, Any]:
    """A padded batch (rows of these lengths): tracing with padding keeps the mask path."""
    width = max(rows)
    generator = torch.Generator().manual_seed(len(rows))
    ids = torch.randint(1000, min(vocab, 20000), (len(rows), width), generator=generator)
    mask = torch.zeros(len(rows), width, dtype=torch.long)
    for i, n in enumerate(rows):
        mask[i, :n] = 1
    return ids * mask, mask


def trace_path(cache_dir: Path, precision: str) -> Path:
    return cache_dir / f"torch-{precision}.pt"


def trace_key(cache_dir: Path, precision: str, torch_version: str) -> dict[str, object]:
    """What a cached trace is derived from (see :mod:`cache`)."""
    return {
        "kind": "torchscript-trace",
        "weights": cache_dir.name,
        "precision": precision,
        "torch": str(torch_version),
    }


def export_trace(
    model_dir: Path, target: Path, precision: str, key: dict[str, object] | None = None
) -> Path | None:
    """Trace the eager model at ``precision`` into ``target``; None if the trace is not exact."""
    import torch

    from modeldeploy.serving.backends import cache

    eager = _eager(model_dir)
    vocab = int(eager.config.vocab_size)

    class Logits(torch.nn.Module):
        def __init__(self, model: Any) -> None:
            super().__init__()
            self.model = model

        def forward(self, input_ids: Any, attention_mask: Any) -> Any:
            return self.model(input_ids=input_ids, attention_mask=attention_mask).logits

    wrapper = Logits(eager).eval()
    example = _probe_batch(torch, [12, 7, 3], vocab)
    check = _probe_batch(torch, [21, 5, 17, 2, 9], vocab)
    with torch.inference_mode(), _autocast(torch, "cpu", precision), warnings_silenced():
        traced = torch.jit.trace(wrapper, example, check_trace=False)
        expected = wrapper(*check).float()
        with torch.jit.optimized_execution(False):
            got = traced(*check).float()
    error = float((expected - got).abs().max())
    if not error <= TRACE_TOLERANCE[precision]:
        log.warning(
            "the %s trace differs from the eager model by %.3g: not cached", precision, error
        )
        return None
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent) as work:
        tmp = Path(work) / target.name
        torch.jit.save(traced, str(tmp))
        cache.commit(tmp, target, key or trace_key(target.parent, precision, torch.__version__))
    return target


@contextlib.contextmanager
def warnings_silenced() -> Any:
    """The tracer warns about shape-derived Python values; the exactness check covers them."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


class TorchBackend:
    """``logits`` on a padded batch; ``precision`` fp32, bf16 or fp16; ``device`` cpu or cuda."""

    def __init__(
        self,
        model_dir: Path,
        threads: int,
        precision: str = "fp32",
        device: str = "cpu",
        cache_dir: Path | None = None,
    ) -> None:
        import torch

        configure_torch_threads(threads)
        self._torch = torch
        self.precision = precision
        self.device = device
        self.runtime = runtime_name(precision, device)
        self.traced = False
        self.trace: Path | None = None
        self.module: Any = None
        if device == "cpu" and cache_dir is not None:
            from modeldeploy.serving.backends import cache

            path = trace_path(cache_dir, precision)
            key = trace_key(cache_dir, precision, torch.__version__)
            if cache.usable(path, key, f"{precision} trace") or export_trace(
                model_dir, path, precision, key
            ):
                self.module = torch.jit.load(str(path), map_location="cpu").eval()
                self.traced = True
                self.trace = path
        if self.module is None:
            self.module = _eager(model_dir).to(device)

    @contextlib.contextmanager
    def single_threaded(self) -> Iterator[None]:
        """One intra-op thread for the start-up checks, then the configured number again.

        They score a few dozen sentences, which two threads hardly speed up on a quiet
        machine; on a busy one a two-thread OpenMP team spends most of such a run waiting
        for its other thread (measured at load average 8: 1.2-2.0 s of CPU for the
        32-sentence check in bf16, 0.2-0.26 s on one thread).
        """
        torch = self._torch
        configured = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            yield
        finally:
            torch.set_num_threads(configured)

    def logits(self, input_ids: np.ndarray, attention_mask: np.ndarray) -> np.ndarray:
        torch = self._torch
        ids = torch.from_numpy(input_ids).to(self.device)
        mask = torch.from_numpy(attention_mask).to(self.device)
        with torch.inference_mode():
            if self.traced:
                # The profiling executor would re-specialise on every new (batch, length).
                with torch.jit.optimized_execution(False):
                    out = self.module(ids, mask)
            else:
                with _autocast(torch, self.device, self.precision):
                    out = self.module(input_ids=ids, attention_mask=mask).logits
        return out.float().cpu().numpy()
