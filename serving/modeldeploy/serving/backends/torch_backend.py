"""The torch backend: fp32 reference, bf16/fp16 autocast, CPU or CUDA.

On CPU the model runs as a TorchScript trace cached next to the exported ONNX graphs
(``$MODELDEPLOY_CACHE/compiled/<weights digest>/torch-<precision>.pt``): loading it needs
only ``import torch`` (no transformers, no ``from_pretrained``), which is most of what
keeps the torch runtime's cold start short. A trace is written once, from the eager
model, and kept only if it reproduces the eager model on a padded batch of another
shape than the one traced; otherwise (or on CUDA) the eager model serves. It is loaded
only when its record (:mod:`cache`) matches: same weights, precision and torch version,
and the file still hashes to what was written (a corrupt trace is rebuilt).

bf16 and fp16 are traced under ``torch.autocast``, so the casts are in the graph
(layer norms and softmax keep fp32 where autocast keeps them); the linear layers' weights
are stored in the reduced precision once (:func:`packed_model.cast_linear_weights`).

With ``pack_row_tokens`` > 0 (the server's default on CPU) the trace is of the *packed*
classifier (:mod:`packing`, :mod:`packed_model`): ``logits`` still takes a padded batch,
strips the padding and lays the sentences end to end into short rows, so a pass computes
real tokens only. That trace is kept only if it reproduces the padded eager model; a
family that cannot be packed, or a packed trace that does not match, serves padded.
"""

from __future__ import annotations

import contextlib
import logging
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from modeldeploy.serving import packing
from modeldeploy.serving.backends import packed_model

log = logging.getLogger(__name__)

DTYPES = {"bf16": "bfloat16", "fp16": "float16"}
TRACE_TOLERANCE = {"fp32": 1e-4, "bf16": 2e-2, "fp16": 2e-2}
PROBE_ROWS = [21, 5, 17, 2, 9, 33, 1, 12]
"""Lengths of the probe batch a trace must reproduce the eager model on: not the traced
shape, and (packed) rows that hold several sentences, one alone, and a one-token one."""


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


def eager_model(model_dir: Path) -> Any:
    from transformers import AutoModelForSequenceClassification

    return AutoModelForSequenceClassification.from_pretrained(model_dir).eval()


def probe_batch(torch: Any, rows: list[int], vocab: int) -> tuple[Any, Any]:
    """A padded batch (rows of these lengths): tracing with padding keeps the mask path."""
    width = max(rows)
    generator = torch.Generator().manual_seed(len(rows))
    ids = torch.randint(1000, min(vocab, 20000), (len(rows), width), generator=generator)
    mask = torch.zeros(len(rows), width, dtype=torch.long)
    for i, n in enumerate(rows):
        mask[i, :n] = 1
    return ids * mask, mask


def trace_path(cache_dir: Path, precision: str, packed: bool = False) -> Path:
    return cache_dir / f"torch-{precision}{'-packed' if packed else ''}.pt"


def refusal_path(trace: Path) -> Path:
    """Where a start records that a packed trace could not be made for these weights."""
    return trace.with_name(trace.stem + ".refused.json")


def trace_key(
    cache_dir: Path, precision: str, torch_version: str, packed: bool = False
) -> dict[str, object]:
    """What a cached trace is derived from (see :mod:`cache`)."""
    return {
        "kind": "torchscript-trace",
        "layout": packed_model.PACKED_LAYOUT if packed else "padded",
        "linear_weights": precision,
        "weights": cache_dir.name,
        "precision": precision,
        "torch": str(torch_version),
    }


def packed_inputs(
    torch: Any, ids: np.ndarray, mask: np.ndarray, row_tokens: int, offset: int
) -> tuple:
    """The packed model's tensors for a right-padded batch given as arrays, the tokens
    filled up to their bucket (oneDNN builds a kernel per token count, :mod:`packing`)."""
    batch = packing.pack(packing.unpad(ids, mask), row_tokens, offset, fill_to_bucket=True)
    return tuple(torch.from_numpy(a) for a in batch.arrays())


def packed_probe(torch: Any, rows: list[int], vocab: int, row_tokens: int, offset: int) -> tuple:
    """The probe batch of these lengths (:func:`probe_batch`), packed into rows of
    ``row_tokens``: what a packed trace or graph is checked on."""
    ids, mask = (t.numpy() for t in probe_batch(torch, rows, vocab))
    return packed_inputs(torch, ids, mask, row_tokens, offset)


def export_trace(
    model_dir: Path,
    target: Path,
    precision: str,
    key: dict[str, object] | None = None,
    row_tokens: int = 0,
) -> Path | None:
    """Trace the eager model at ``precision`` into ``target`` (packed into rows of
    ``row_tokens`` when that is > 0); None if the trace does not reproduce the padded eager
    model on the probe batch, or the family cannot be packed."""
    import torch

    from modeldeploy.serving.backends import cache

    eager = eager_model(model_dir)
    vocab = int(eager.config.vocab_size)
    wrapper: Any
    if row_tokens > 0:
        wrapper = packed_model.packed_classifier(eager)
        if wrapper is None:
            return None
    else:

        class Logits(torch.nn.Module):
            def __init__(self, model: Any) -> None:
                super().__init__()
                self.model = model

            def forward(self, input_ids: Any, attention_mask: Any) -> Any:
                return self.model(input_ids=input_ids, attention_mask=attention_mask).logits

        wrapper = Logits(eager).eval()
    offset = packed_model.position_offset(eager.config.to_dict())

    def inputs(rows: list[int]) -> tuple:
        if row_tokens <= 0:
            return probe_batch(torch, rows, vocab)
        return packed_probe(torch, rows, vocab, row_tokens, offset)

    example, check = inputs([12, 7, 3]), inputs(PROBE_ROWS)
    with torch.inference_mode(), _autocast(torch, "cpu", precision), warnings_silenced():
        expected = eager(*probe_batch(torch, PROBE_ROWS, vocab)).logits.float()
        if precision in DTYPES:
            packed_model.cast_linear_weights(wrapper, getattr(torch, DTYPES[precision]))
        traced = torch.jit.trace(wrapper, example, check_trace=False)
        with torch.jit.optimized_execution(False):
            got = traced(*check).float()
    error = float((expected - got).abs().max())
    if not error <= TRACE_TOLERANCE[precision]:
        log.warning(
            "the %s%s trace differs from the eager padded model by %.3g: not cached",
            precision,
            " packed" if row_tokens > 0 else "",
            error,
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
    """``logits`` on a padded batch; ``precision`` fp32, bf16 or fp16; ``device`` cpu or cuda.

    ``pack_row_tokens`` > 0 packs each batch into rows of that many tokens (CPU traces
    only; :attr:`packs` says whether it does); 0 serves padded batches as given.
    """

    def __init__(
        self,
        model_dir: Path,
        threads: int,
        precision: str = "fp32",
        device: str = "cpu",
        cache_dir: Path | None = None,
        pack_row_tokens: int = 0,
    ) -> None:
        import torch

        configure_torch_threads(threads)
        self._torch = torch
        self.precision = precision
        self.device = device
        self.runtime = runtime_name(precision, device)
        self.traced = False
        self.packs = False
        self.row_tokens = 0
        self.position_offset = 0
        self.trace: Path | None = None
        self.module: Any = None
        if device == "cpu" and cache_dir is not None:
            layouts = [True, False] if pack_row_tokens > 0 else [False]
            for packed in layouts:
                if self._load_trace(model_dir, cache_dir, precision, packed, pack_row_tokens):
                    break
        if self.module is None:
            self.module = eager_model(model_dir).to(device)

    def _load_trace(
        self, model_dir: Path, cache_dir: Path, precision: str, packed: bool, row_tokens: int
    ) -> bool:
        """Load (or first export) the trace of this layout; False when there is none."""
        from modeldeploy.serving.backends import cache

        torch = self._torch
        path = trace_path(cache_dir, precision, packed)
        key = trace_key(cache_dir, precision, torch.__version__, packed)
        what = f"{precision}{' packed' if packed else ''} trace"
        refusal = refusal_path(path)
        if packed and cache.read_verdict(refusal, key) is not None:
            log.info("%s: these weights were found not to pack (%s); padded", what, refusal)
            return False
        if not cache.usable(path, key, what) and not export_trace(
            model_dir, path, precision, key, row_tokens if packed else 0
        ):
            if packed:  # remembered: every later start would try again (seconds each)
                reason = "no packed classifier for this family, or it differs from padded"
                cache.write_verdict(refusal, key, {"refused": reason})
            return False
        self.module = torch.jit.load(str(path), map_location="cpu").eval()
        self.traced, self.trace = True, path
        if packed:
            self.packs, self.row_tokens = True, row_tokens
            self.position_offset = packed_model.position_offset_of(model_dir)
        return True

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
        if self.packs:  # straight from the arrays: a packed trace runs on the CPU only
            inputs = packed_inputs(
                torch, input_ids, attention_mask, self.row_tokens, self.position_offset
            )
            with torch.inference_mode(), torch.jit.optimized_execution(False):
                return self.module(*inputs).float().numpy()
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
