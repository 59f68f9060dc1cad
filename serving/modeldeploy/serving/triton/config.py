"""Render Triton ``config.pbtxt`` text for an exported classifier (pure, no I/O).

Two targets share one client-facing contract, so a caller never knows which one it hits:
input ``TEXT`` (BYTES, one string per row), outputs ``LABEL`` (BYTES), ``LABEL_INDEX``
and ``NUM_LABELS`` (INT64, the class count, so a reader of a label-view answer knows which
indexes exist) and ``PROBABILITIES`` (FP32, one column per class). The ``python`` target answers
``PROBABILITIES`` only in the full client view (``backend_model.response_detail``); the
ensemble always does (its step map needs every output), so it does not serve the label view.

- ``python``: one model, Triton's Python backend runs tokenizer + onnxruntime (or torch).
  This is the only target the Triton inside ``nvidia-pytriton`` can run (CPU).
- ``onnxruntime``: for GPU clusters with a stock Triton image. An ensemble named like the
  model chains ``<name>_tokenize`` (Python, CPU) -> ``<name>_onnx`` (native onnxruntime
  backend, GPU, optional TensorRT) -> ``<name>_postprocess`` (Python, CPU).

The Python-backend models list ``version_policy: { all { } }`` so a second exported version
is served beside the first (Triton's default serves only the latest). The ensemble instead
pins one version, in its policy and in every step, so that its version N can only run
version N of its parts (with ``-1`` it ran the latest part, another version's weights).

Every Python-backend model carries ``export_name`` (where its version's manifest lies, see
``export.py``) and ``max_chars`` (the Python predictor's character limit).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from modeldeploy.serving.triton.backend_model import DEFAULT_MAX_CHARS, PRECISIONS

TARGETS = ("python", "onnxruntime")


@dataclass(frozen=True)
class Batching:
    """Dynamic-batching knobs; the queue delay is what a request may wait for company."""

    max_batch_size: int = 64
    max_queue_delay_us: int = 2000
    preferred_batch_sizes: tuple[int, ...] = ()
    instances: int = 1

    def __post_init__(self) -> None:
        if self.max_batch_size < 1:
            raise ValueError("max_batch_size must be at least 1 (0 disables batching)")
        if self.max_queue_delay_us < 0:
            raise ValueError("max_queue_delay_us must not be negative")
        if any(not 0 < b <= self.max_batch_size for b in self.preferred_batch_sizes):
            raise ValueError("preferred batch sizes must lie in 1..max_batch_size")
        if self.instances < 1:
            raise ValueError("instances must be at least 1")


DEFAULT_BATCHING = Batching()


def _tensor(name: str, data_type: str, dims: Sequence[int]) -> str:
    shape = ", ".join(str(d) for d in dims)
    return f'  {{ name: "{name}" data_type: {data_type} dims: [ {shape} ] }}'


def _tensors(section: str, tensors: Sequence[str]) -> str:
    return f"{section} [\n" + ",\n".join(tensors) + "\n]"


def _parameters(values: Mapping[str, str]) -> str:
    return "\n".join(
        f'parameters: {{ key: "{key}" value: {{ string_value: "{value}" }} }}'
        for key, value in values.items()
    )


def _dynamic_batching(batching: Batching) -> str:
    lines = ["dynamic_batching {"]
    if batching.preferred_batch_sizes:
        sizes = ", ".join(str(b) for b in batching.preferred_batch_sizes)
        lines.append(f"  preferred_batch_size: [ {sizes} ]")
    lines.append(f"  max_queue_delay_microseconds: {batching.max_queue_delay_us}")
    lines.append("}")
    return "\n".join(lines)


def _instances(batching: Batching, kind: str) -> str:
    return f"instance_group [ {{ count: {batching.instances} kind: {kind} }} ]"


def _header(
    name: str,
    batching: Batching,
    *,
    backend: str = "",
    platform: str = "",
    pinned_version: int | None = None,
) -> str:
    lines = [f'name: "{name}"']
    if backend:
        lines.append(f'backend: "{backend}"')
    if platform:
        lines.append(f'platform: "{platform}"')
    lines.append(f"max_batch_size: {batching.max_batch_size}")
    if pinned_version is None:
        lines.append("version_policy: { all { } }")
    else:
        lines.append(f"version_policy: {{ specific {{ versions: [ {pinned_version} ] }} }}")
    return "\n".join(lines)


def _text_io(num_labels: int) -> str:
    return "\n".join(
        [
            _tensors("input", [_tensor("TEXT", "TYPE_STRING", [1])]),
            _tensors(
                "output",
                [
                    _tensor("LABEL", "TYPE_STRING", [1]),
                    _tensor("LABEL_INDEX", "TYPE_INT64", [1]),
                    _tensor("NUM_LABELS", "TYPE_INT64", [1]),
                    _tensor("PROBABILITIES", "TYPE_FP32", [num_labels]),
                ],
            ),
        ]
    )


def python_model_config(
    name: str,
    num_labels: int,
    batching: Batching = DEFAULT_BATCHING,
    *,
    runtime: str = "onnx",
    threads: int = 0,
    max_chars: int = DEFAULT_MAX_CHARS,
    precision: str = "fp32",
) -> str:
    """The single-model CPU repository: Python backend, text in, label + probabilities out.

    ``precision`` ``bf16`` (torch runtime only) runs the network under ``torch.autocast``;
    the parameter is written only then, so an fp32 config reads as it always has and a
    repository exported before it still takes new versions.
    """
    if runtime not in ("onnx", "torch"):
        raise ValueError(f"unknown runtime {runtime!r}: use 'onnx' or 'torch'")
    if precision not in PRECISIONS:
        raise ValueError(f"unknown precision {precision!r}: use one of {PRECISIONS}")
    if precision != "fp32" and runtime != "torch":
        raise ValueError(f"precision {precision!r} needs runtime 'torch'")
    extra = {"precision": precision} if precision != "fp32" else {}
    parts = [
        _header(name, batching, backend="python"),
        _text_io(num_labels),
        _dynamic_batching(batching),
        _instances(batching, "KIND_CPU"),
        _parameters(
            {
                "stage": "full",
                "runtime": runtime,
                "threads": str(threads),
                "export_name": name,
                "max_chars": str(max_chars),
                **extra,
            }
        ),
    ]
    return "\n".join(parts) + "\n"


def native_onnxruntime_configs(
    name: str,
    num_labels: int,
    input_names: Sequence[str],
    batching: Batching = DEFAULT_BATCHING,
    *,
    version: int,
    tensorrt: bool = False,
    max_chars: int = DEFAULT_MAX_CHARS,
) -> dict[str, str]:
    """Config text per model directory for the GPU ensemble (see the module docstring).

    The tokenize step pads to the checkpoint's max length so that requests of different
    lengths have equal shapes and Triton's batcher in front of the onnxruntime model can
    merge them; on a GPU that costs far less than unbatched execution.

    An ensemble has one config for all its versions, so it serves exactly ``version`` and
    each step names that version of its part. Serving two versions side by side on this
    target means exporting them under two names (as KServe does: one InferenceService, one
    repository, per arm); ``export_repository`` refuses a second version under one name.
    """
    tokenize, network, post = f"{name}_tokenize", f"{name}_onnx", f"{name}_postprocess"
    ids = [(n, n.upper()) for n in input_names]
    tokenize_config = "\n".join(
        [
            _header(tokenize, batching, backend="python"),
            _tensors("input", [_tensor("TEXT", "TYPE_STRING", [1])]),
            _tensors("output", [_tensor(upper, "TYPE_INT64", [-1]) for _, upper in ids]),
            _dynamic_batching(batching),
            _instances(batching, "KIND_CPU"),
            _parameters(
                {
                    "stage": "tokenize",
                    "input_names": ",".join(input_names),
                    "export_name": name,
                    "max_chars": str(max_chars),
                }
            ),
        ]
    )
    onnx_lines = [
        _header(network, batching, platform="onnxruntime_onnx"),
        _tensors("input", [_tensor(n, "TYPE_INT64", [-1]) for n, _ in ids]),
        _tensors("output", [_tensor("logits", "TYPE_FP32", [num_labels])]),
        _dynamic_batching(batching),
        _instances(batching, "KIND_GPU"),
    ]
    if tensorrt:
        onnx_lines.append(
            "optimization { execution_accelerators { gpu_execution_accelerator: [ "
            '{ name: "tensorrt" parameters { key: "precision_mode" value: "FP16" } } ] } }'
        )
    post_config = "\n".join(
        [
            _header(post, batching, backend="python"),
            _tensors("input", [_tensor("LOGITS", "TYPE_FP32", [num_labels])]),
            _tensors(
                "output",
                [
                    _tensor("LABEL", "TYPE_STRING", [1]),
                    _tensor("LABEL_INDEX", "TYPE_INT64", [1]),
                    _tensor("NUM_LABELS", "TYPE_INT64", [1]),
                    _tensor("PROBABILITIES", "TYPE_FP32", [num_labels]),
                ],
            ),
            _instances(batching, "KIND_CPU"),
            _parameters({"stage": "postprocess", "export_name": name}),
        ]
    )

    def step(model: str, inputs: Mapping[str, str], outputs: Mapping[str, str]) -> str:
        maps = [f'      input_map {{ key: "{k}" value: "{v}" }}' for k, v in inputs.items()]
        maps += [f'      output_map {{ key: "{k}" value: "{v}" }}' for k, v in outputs.items()]
        body = "\n".join(maps)
        return (
            f'    {{\n      model_name: "{model}"\n      model_version: {version}\n{body}\n    }}'
        )

    steps = [
        step(tokenize, {"TEXT": "TEXT"}, {upper: f"_{n}" for n, upper in ids}),
        step(network, {n: f"_{n}" for n, _ in ids}, {"logits": "_logits"}),
        step(
            post,
            {"LOGITS": "_logits"},
            {o: o for o in ("LABEL", "LABEL_INDEX", "NUM_LABELS", "PROBABILITIES")},
        ),
    ]
    ensemble_config = "\n".join(
        [
            _header(name, batching, platform="ensemble", pinned_version=version),
            _text_io(num_labels),
            "ensemble_scheduling {\n  step [\n" + ",\n".join(steps) + "\n  ]\n}",
        ]
    )
    return {
        name: ensemble_config + "\n",
        tokenize: tokenize_config + "\n",
        network: "\n".join(onnx_lines) + "\n",
        post: post_config + "\n",
    }
