"""ONNX Runtime backend, with the export and the optional dynamic INT8 quantization.

Exported graphs are cached under ``$MODELDEPLOY_CACHE/compiled/<weights digest>/`` so a
restart loads the graph directly: that path needs neither torch nor transformers,
which is most of what makes a cold start fast. Two more start-up costs are cached:

- the graph after ONNX Runtime's optimisations (``model.opt.onnx``, written by the first
  session at the portable ``ORT_ENABLE_EXTENDED`` level, which holds the BERT fusions),
  loaded later with optimisation off instead of redoing the fusions;
- the weights digest, memoised per file identity (path, size, mtime, ctime, inode) in
  ``$MODELDEPLOY_CACHE/onnx/digests.json``, so a restart does not read 90 MB to find its
  cache key. Rewriting a file changes its ctime, which a stale entry cannot survive.

Every cached graph carries a record (:mod:`cache`): it is loaded only if it was derived
from the same source with the same library versions and still hashes to what was written.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
from pathlib import Path

import numpy as np

from modeldeploy.serving import packing

ONNX_FILE = "model.onnx"
INT8_FILE = "model.int8.onnx"
PACKED_FILE = "model.packed.onnx"
"""The packed classifier (:mod:`packed_model`): tokens end to end, attention in rows."""
PACKED_PROBE_ROW_TOKENS = 16
"""Row width of the probe that admits a packed graph: rows then hold several sentences,
one sentence is wider than a row and one is a single token (the graph has no fixed
width; the server's rows are wider)."""
PACKED_TOLERANCE = 1e-4
INPUT_NAMES = ("input_ids", "attention_mask")
DIGESTS_FILE = "digests.json"
COMPILED_DIR = "compiled"
"""Under the cache root: one folder per weights digest (``onnx/`` holds the digest memo)."""
OPSET = 17

log = logging.getLogger(__name__)


def cache_root() -> Path:
    """``$MODELDEPLOY_CACHE`` (default ~/.cache/modeldeploy), as the checkpoint factory uses."""
    root = os.environ.get("MODELDEPLOY_CACHE") or str(Path.home() / ".cache" / "modeldeploy")
    return Path(root)


def _identity(path: Path) -> str:
    st = path.stat()
    return f"{path.resolve()}|{st.st_size}|{st.st_mtime_ns}|{st.st_ctime_ns}|{st.st_ino}"


def _hash_weights(model_dir: Path) -> str:
    digest = hashlib.sha256()
    for name in ("config.json", "model.safetensors"):
        with open(model_dir / name, "rb") as handle:
            digest.update(name.encode())
            digest.update(hashlib.file_digest(handle, "sha256").digest())
    return digest.hexdigest()[:20]


def weights_digest(model_dir: Path) -> str:
    """SHA-256 over config and weights: the key of everything derived from them.

    Memoised by the files' identity (see the module docstring); a missing, unreadable or
    unwritable memo only costs the hash.
    """
    key = "+".join(_identity(model_dir / n) for n in ("config.json", "model.safetensors"))
    memo_file = cache_root() / "onnx" / DIGESTS_FILE
    try:
        memo = json.loads(memo_file.read_text())
    except (OSError, ValueError):
        memo = {}
    if isinstance(memo.get(key), str):
        return str(memo[key])
    value = _hash_weights(model_dir)
    memo = {k: v for k, v in memo.items() if not k.startswith(f"{model_dir.resolve()}/")}
    memo[key] = value
    try:
        memo_file.parent.mkdir(parents=True, exist_ok=True)
        tmp = memo_file.with_name(f".{DIGESTS_FILE}.{os.getpid()}")
        tmp.write_text(json.dumps(memo, indent=1))
        os.replace(tmp, memo_file)
    except OSError as exc:
        log.warning("could not memoise the weights digest in %s: %s", memo_file, exc)
    return value


def artifact_dir(model_dir: Path) -> Path:
    return cache_root() / COMPILED_DIR / weights_digest(model_dir)


def graph_key(folder: Path, int8: bool, packed: bool = False) -> dict[str, object]:
    """What the cached graph in ``folder`` is derived from (see :mod:`cache`)."""
    from modeldeploy.serving.backends.cache import library_version
    from modeldeploy.serving.backends.packed_model import PACKED_LAYOUT

    key: dict[str, object] = {
        "kind": "onnx-export",
        "weights": folder.name,
        "opset": OPSET,
        "torch": library_version("torch"),
    }
    if packed:
        key.update(layout=PACKED_LAYOUT, transformers=library_version("transformers"))
    if int8:
        key.update(kind="onnx-int8-dynamic", onnxruntime=library_version("onnxruntime"))
    return key


def export(model_dir: Path, out_dir: Path) -> Path:
    """Export the classifier to ONNX with dynamic batch and sequence axes (recorded, atomic)."""
    import torch
    from transformers import AutoModelForSequenceClassification

    from modeldeploy.serving.backends import cache

    target = out_dir / ONNX_FILE
    key = graph_key(out_dir, int8=False)
    if cache.usable(target, key, "ONNX graph"):
        return target
    out_dir.mkdir(parents=True, exist_ok=True)
    model = AutoModelForSequenceClassification.from_pretrained(model_dir).eval()
    ids = torch.ones(2, 8, dtype=torch.long)
    mask = torch.ones(2, 8, dtype=torch.long)
    axes = {name: {0: "batch", 1: "sequence"} for name in INPUT_NAMES}
    with tempfile.TemporaryDirectory(dir=out_dir) as work:
        tmp = Path(work) / ONNX_FILE
        with torch.inference_mode():
            torch.onnx.export(
                model,
                (ids, mask),
                str(tmp),
                input_names=list(INPUT_NAMES),
                output_names=["logits"],
                dynamic_axes={**axes, "logits": {0: "batch"}},
                opset_version=OPSET,
                dynamo=False,  # the dynamo exporter needs onnxscript, which is not installed
            )
        cache.commit(tmp, target, key)
    return target


def int8_path(source: Path) -> Path:
    """`model.onnx` -> `model.int8.onnx`; `model.packed.onnx` -> `model.packed.int8.onnx`."""
    return source.with_name(f"{source.stem}.int8.onnx")


def graph_path(folder: Path, int8: bool, packed: bool) -> Path:
    """Where the graph of this precision and layout is cached in ``folder``."""
    source = folder / (PACKED_FILE if packed else ONNX_FILE)
    return int8_path(source) if int8 else source


def quantize(source: Path) -> Path:
    """Dynamic INT8 quantization of the weights of MatMul/Gemm (activations stay float)."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    from modeldeploy.serving.backends import cache

    target = int8_path(source)
    key = {**graph_key(source.parent, int8=True), "source": cache.recorded_sha256(source)}
    if cache.usable(target, key, "INT8 graph"):
        return target
    with tempfile.TemporaryDirectory(dir=source.parent) as work:
        tmp = Path(work) / target.name
        quantize_dynamic(str(source), str(tmp), weight_type=QuantType.QInt8)
        cache.commit(tmp, target, key)
    return target


def ensure_artifact(model_dir: Path, int8: bool) -> Path:
    """The cached graph for these weights, verified, or exported (and quantized) now."""
    from modeldeploy.serving.backends import cache

    folder = artifact_dir(model_dir)
    target = folder / (INT8_FILE if int8 else ONNX_FILE)
    if int8:
        source = folder / ONNX_FILE
        if cache.why_unusable(source, graph_key(folder, int8=False)) is None:
            key = {**graph_key(folder, int8=True), "source": cache.recorded_sha256(source)}
            if cache.usable(target, key, "INT8 graph"):
                return target
    elif cache.usable(target, graph_key(folder, int8=False), "ONNX graph"):
        return target
    graph = export(model_dir, folder)
    return quantize(graph) if int8 else graph


def export_packed(model_dir: Path, out_dir: Path) -> Path | None:
    """The packed classifier as an ONNX graph (recorded, atomic), or None when the family
    cannot be packed or the graph does not reproduce the padded eager model on the probe
    batch; a refusal is recorded so later starts do not try again."""
    from modeldeploy.serving.backends import cache

    target = out_dir / PACKED_FILE
    key = graph_key(out_dir, int8=False, packed=True)
    if cache.usable(target, key, "packed ONNX graph"):
        return target
    refusal = refusal_path(target)
    if cache.read_verdict(refusal, key) is not None:
        log.info("these weights were found not to pack (%s); the padded graph serves", refusal)
        return None
    out_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out_dir) as work:
        tmp = Path(work) / PACKED_FILE
        error = _export_packed_to(model_dir, tmp)
        if error is None or not error <= PACKED_TOLERANCE:
            reason = (
                "no packed classifier for this family"
                if error is None
                else (f"the packed graph differs from the padded model by {error:.3g}")
            )
            log.warning("packed ONNX graph refused: %s", reason)
            cache.write_verdict(refusal, key, {"refused": reason})
            return None
        cache.commit(tmp, target, key)
    return target


def refusal_path(graph: Path) -> Path:
    """Where a start records that a packed graph could not be made for these weights."""
    return graph.with_name(graph.stem + ".refused.json")


def _export_packed_to(model_dir: Path, tmp: Path) -> float | None:
    """Export the packed classifier to ``tmp``; its largest logit error against the padded
    eager model on the probe batch, or None when the family cannot be packed."""
    import onnxruntime as ort
    import torch

    from modeldeploy.serving.backends import packed_model
    from modeldeploy.serving.backends.torch_backend import (
        PROBE_ROWS,
        eager_model,
        packed_probe,
        probe_batch,
        warnings_silenced,
    )

    eager = eager_model(model_dir)
    wrapper = packed_model.packed_classifier(eager)
    if wrapper is None:
        return None
    vocab = int(eager.config.vocab_size)
    offset = packed_model.position_offset(eager.config.to_dict())

    def inputs(rows: list[int]) -> tuple:
        return packed_probe(torch, rows, vocab, PACKED_PROBE_ROW_TOKENS, offset)

    axes = {
        "ids": {0: "tokens"},
        "positions": {0: "tokens"},
        "bias": {0: "rows", 2: "width", 3: "width"},
        "slots": {0: "slots"},
        "token_slot": {0: "tokens"},
        "first_token": {0: "items"},
        "logits": {0: "items"},
    }
    with torch.inference_mode(), warnings_silenced():
        expected = eager(*probe_batch(torch, PROBE_ROWS, vocab)).logits.numpy()
        torch.onnx.export(
            wrapper,
            inputs([12, 7, 3]),
            str(tmp),
            input_names=list(packing.INPUT_NAMES),
            output_names=["logits"],
            dynamic_axes=axes,
            opset_version=OPSET,
            dynamo=False,
        )
    session = ort.InferenceSession(str(tmp), providers=["CPUExecutionProvider"])
    feed = dict(zip(packing.INPUT_NAMES, (t.numpy() for t in inputs(PROBE_ROWS)), strict=True))
    got = session.run(["logits"], feed)[0]
    return float(np.abs(expected - got).max())


def ensure_packed(model_dir: Path, int8: bool) -> Path | None:
    """The cached packed graph (quantized for INT8), exported now if need be; None if these
    weights do not pack."""
    graph = export_packed(model_dir, artifact_dir(model_dir))
    if graph is None:
        return None
    return quantize(graph) if int8 else graph


def open_backend(
    model_dir: Path, runtime: str, threads: int, pack_row_tokens: int = 0
) -> OnnxBackend:
    """``onnx`` or ``onnx-int8`` for ``model_dir``: packed into rows of ``pack_row_tokens``
    when that is > 0 and the weights pack, else on padded batches."""
    from modeldeploy.serving.backends import packed_model

    int8 = runtime == "onnx-int8"
    graph = ensure_packed(model_dir, int8) if pack_row_tokens > 0 else None
    if graph is None:
        return OnnxBackend(ensure_artifact(model_dir, int8=int8), threads, runtime)
    offset = packed_model.position_offset_of(model_dir)
    return OnnxBackend(graph, threads, runtime, pack_row_tokens, offset)


def optimized_path(graph: Path) -> Path:
    """The cached ORT-optimised copy of ``graph`` (``model.onnx`` -> ``model.opt.onnx``)."""
    return graph.with_name(f"{graph.stem}.opt.onnx")


def optimized_key(graph: Path, ort_version: str) -> dict[str, object]:
    """The optimised graph depends on its source graph, ORT's version and the CPU."""
    from modeldeploy.serving.backends.cache import hardware_key, recorded_sha256

    return {
        "kind": "ort-optimized-extended",
        "source": recorded_sha256(graph),
        "onnxruntime": ort_version,
        "cpu": hardware_key(),
    }


class OnnxBackend:
    """``logits`` on a padded batch. With ``pack_row_tokens`` > 0 ``graph`` is the packed
    classifier (:func:`export_packed`) and each batch is packed into rows of that many
    tokens first (:attr:`packs`)."""

    def __init__(
        self,
        graph: Path,
        threads: int,
        runtime: str = "onnx",
        pack_row_tokens: int = 0,
        position_offset: int = 0,
    ) -> None:
        import onnxruntime as ort

        def options(level: ort.GraphOptimizationLevel) -> ort.SessionOptions:
            opts = ort.SessionOptions()
            opts.intra_op_num_threads = max(1, threads)
            opts.inter_op_num_threads = 1
            opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
            opts.graph_optimization_level = level
            return opts

        from modeldeploy.serving.backends import cache

        levels = ort.GraphOptimizationLevel
        optimized = optimized_path(graph)
        providers = ["CPUExecutionProvider"]
        key = optimized_key(graph, ort.__version__)
        if cache.usable(optimized, key, "optimised ONNX graph"):
            # Already fused: optimising again would only repeat the work.
            opts = options(levels.ORT_DISABLE_ALL)
            self.session = ort.InferenceSession(str(optimized), opts, providers=providers)
            self.optimized_from_cache = True
        else:
            # EXTENDED holds every transformer fusion; ALL would add only NCHWc layouts
            # (convolutions), which are hardware specific and useless for BERT.
            opts = options(levels.ORT_ENABLE_EXTENDED)
            tmp = optimized.with_name(f".{optimized.name}.{os.getpid()}")
            writable = os.access(graph.parent, os.W_OK)
            if writable:
                opts.optimized_model_filepath = str(tmp)
            self.session = ort.InferenceSession(str(graph), opts, providers=providers)
            if writable and tmp.exists():
                cache.commit(tmp, optimized, key)
            self.optimized_from_cache = False
        self.runtime = runtime
        self.graph = graph
        self.packs = pack_row_tokens > 0
        self.row_tokens = pack_row_tokens
        self.position_offset = position_offset

    def logits(self, input_ids: np.ndarray, attention_mask: np.ndarray) -> np.ndarray:
        if self.packs:
            batch = packing.pack(
                packing.unpad(input_ids, attention_mask), self.row_tokens, self.position_offset
            )
            feed = dict(zip(packing.INPUT_NAMES, batch.arrays(), strict=True))
        else:
            feed = {"input_ids": input_ids, "attention_mask": attention_mask}
        return np.asarray(self.session.run(["logits"], feed)[0], dtype=np.float32)
