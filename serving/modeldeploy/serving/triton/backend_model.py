"""Triton Python-backend model for a BERT-family text classifier.

This file is copied verbatim into an exported repository as ``<name>/<version>/model.py``.
It must not import ``modeldeploy``: a Triton image on a GPU cluster has only the packages
listed in ``docs/serving-router-triton.md`` (numpy, tokenizers, onnxruntime, and torch +
transformers for the torch runtime). Everything it needs sits in its own version
directory, so tokenizer and weights always come from the same exported unit.

One file serves three stages, chosen by the ``stage`` parameter in ``config.pbtxt``:

- ``full`` (the CPU repository): text in, tokenize, run the model; ``LABEL``,
  ``LABEL_INDEX`` and ``NUM_LABELS`` out, and ``PROBABILITIES`` only in the full client view
  (``MODELDEPLOY_RESPONSE_DETAIL=full``), so a label-view answer tells no arm apart;
- ``tokenize`` and ``postprocess``: the two Python ends of the native-backend ensemble, where
  Triton's own onnxruntime backend runs the network in between.

The pure parts (``TextEncoder``, ``softmax``, ``validate_texts``, ``to_outputs``,
``verify_unit``) are plain Python so the unit tests exercise them without a Triton stub.

Three contracts are copied here from ``modeldeploy`` because this file cannot import it;
tests hold each copy equal to its source:

- input checks and messages: ``modeldeploy.serving.codecs.validate_texts`` (a refused input
  is ``INVALID_ARG``, which Triton answers as HTTP 400 / gRPC INVALID_ARGUMENT);
- max-length resolution: ``modeldeploy.serving.loading._max_length``;
- metric names, labels and latency buckets: ``modeldeploy.serving.metrics`` (the analysis
  reads them from Triton's ``/metrics`` exactly as from the Python predictor's).
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

# Longest sequence a BERT-family position table allows; RoBERTa reserves two slots.
_HARD_MAX_LENGTH = 512
# The Python predictor's default ``--max-chars`` (codecs.TruncationPolicy.max_chars).
DEFAULT_MAX_CHARS = 10_000
# Written by export.py beside config.pbtxt: one SHA-256 manifest per exported version.
MANIFEST_PREFIX = "modeldeploy-manifest-"
_IGNORED_DIRS = ("__pycache__",)  # the Python backend may compile model.py in place

# Metric contract (modeldeploy.serving.metrics; Triton's counters keep the _total suffix).
METRIC_REQUESTS = "modeldeploy_requests_total"
METRIC_NAN_OUTPUTS = "modeldeploy_nan_outputs_total"
METRIC_PREDICTIONS = "modeldeploy_predictions_total"
METRIC_DURATION = "modeldeploy_request_duration_seconds"
METRIC_TOKENIZATION_FAILURES = "modeldeploy_tokenization_failures_total"
METRIC_CPU_SECONDS = "modeldeploy_cpu_seconds_total"
METRIC_HELP = {
    METRIC_REQUESTS: "Requests by outcome.",
    METRIC_NAN_OUTPUTS: "Responses whose logits contained NaN.",
    METRIC_PREDICTIONS: "Predictions by class.",
    METRIC_DURATION: "End-to-end request time, tokenization included.",
    METRIC_TOKENIZATION_FAILURES: (
        "Inputs the tokenizer could not turn into readable model input, by reason."
    ),
    METRIC_CPU_SECONDS: "CPU seconds (user + system) the process serving this arm has used.",
}
OUTCOMES = ("ok", "bad_input", "error")
# contract.names.TOKENIZATION_FAILURE_REASONS and UNKNOWN_TOKEN_SHARE_LIMIT.
TOKENIZATION_FAILURE_REASONS = ("empty", "over_limit", "unknown_tokens", "error")
UNKNOWN_TOKEN_SHARE_LIMIT = 0.25
# Both Triton endpoints (HTTP and gRPC) speak the v2 protocol; the model cannot tell them apart.
TRITON_PROTOCOL = "v2"
# Where deployment and role come from: the operator sets them on the Triton container.
ENV_DEPLOYMENT = "MODELDEPLOY_DEPLOYMENT"
ENV_ROLE = "MODELDEPLOY_ROLE"
# The client view (spec.serving.responseDetail): "full" adds PROBABILITIES; anything else is
# the label view. The Python backend's stub inherits tritonserver's environment.
ENV_RESPONSE_DETAIL = "MODELDEPLOY_RESPONSE_DETAIL"
# Written by export.py into a version directory: the registry version the unit was exported
# as. Publishing serves every arm as Triton version 1 (so an answer's model_version names no
# arm); this file, listed in the manifest, gives the metrics their registry version. It is
# not in config.pbtxt because Triton shows a model's config to any client
# (GET /v2/models/NAME/config).
VERSION_FILE = "modeldeploy-version.json"


def latency_buckets() -> tuple[float, ...]:
    """The contract's bounds (``modeldeploy.serving.contract.latency``: 1 ms x 1.05^k up to
    30 s), computed the same way here because Triton's ``model.py`` cannot import the package;
    a unit test keeps the two equal."""
    base, ratio, top = 0.001, 1.05, 30.0
    edges = [base * ratio**k for k in range(math.ceil(math.log(top / base) / math.log(ratio)) + 1)]
    while edges[-1] < top:
        edges.append(base * ratio ** len(edges))
    return tuple(edges)


class BadInput(ValueError):
    """The client sent something the Python predictor would refuse with a 400 too."""


class UnitIntegrityError(RuntimeError):
    """The version's files do not match the manifest shipped with them; do not load."""


@dataclass(frozen=True)
class Encoded:
    """A padded batch: one int64 array per model input, all (batch, sequence)."""

    arrays: dict[str, np.ndarray]
    issues: tuple[tuple[str, ...], ...] = ()
    """Per input, its tokenization failure reasons (``tokenization_issues``)."""


def tokenization_issues(content: int, unknown: int, too_long: bool) -> tuple[str, ...]:
    """A copy of ``modeldeploy.serving.codecs.tokenization_issues`` (docs/metrics.md)."""
    issues = []
    if content <= 0:
        issues.append("empty")
    if too_long:
        issues.append("over_limit")
    if content > 0 and unknown / content > UNKNOWN_TOKEN_SHARE_LIMIT:
        issues.append("unknown_tokens")
    return tuple(issues)


class TextEncoder:
    """Tokenize like ``AutoTokenizer(..., padding=True, truncation=True)`` does.

    The packaged ``tokenizer.json`` may carry padding or truncation of its own; both are
    replaced here so a batch is padded to its longest item (or to ``max_length`` when
    ``pad_to_max_length`` is set, which the native ensemble needs so Triton can batch
    requests of different lengths) and truncated to the checkpoint's max length.
    """

    def __init__(self, directory: Path, *, pad_to_max_length: bool = False) -> None:
        from tokenizers import Tokenizer

        self.max_length = read_max_length(directory)
        settings = _read_json(directory / "tokenizer_config.json")
        tokenizer = Tokenizer.from_file(str(directory / "tokenizer.json"))
        tokenizer.no_padding()
        tokenizer.no_truncation()
        tokenizer.enable_truncation(max_length=self.max_length)
        pad_token = str(settings.get("pad_token") or "[PAD]")
        pad_id = tokenizer.token_to_id(pad_token)
        tokenizer.enable_padding(
            pad_id=0 if pad_id is None else pad_id,
            pad_token=pad_token,
            length=self.max_length if pad_to_max_length else None,
        )
        self._tokenizer = tokenizer
        unk = settings.get("unk_token")
        if isinstance(unk, dict):  # older tokenizer_config.json: an AddedToken object
            unk = unk.get("content")
        self.unk_id = tokenizer.token_to_id(unk) if isinstance(unk, str) else None

    def encode(self, texts: Sequence[str]) -> Encoded:
        encodings = self._tokenizer.encode_batch(list(texts))
        return Encoded(
            arrays={
                "input_ids": np.array([e.ids for e in encodings], dtype=np.int64),
                "attention_mask": np.array([e.attention_mask for e in encodings], dtype=np.int64),
                "token_type_ids": np.array([e.type_ids for e in encodings], dtype=np.int64),
            },
            issues=tuple(self._issues(e) for e in encodings),
        )

    def _issues(self, encoding: Any) -> tuple[str, ...]:
        """Counted on the real tokens (padding excluded); over-long: truncation overflowed."""
        content = unknown = 0
        for token, special, real in zip(
            encoding.ids, encoding.special_tokens_mask, encoding.attention_mask, strict=True
        ):
            if real and not special:
                content += 1
                unknown += token == self.unk_id
        return tokenization_issues(content, unknown, bool(encoding.overflowing))


def read_max_length(directory: Path) -> int:
    """The checkpoint's own limit: metrics.json, then the tokenizer's, capped by positions.

    The same rule, in the same order, as the Python predictor (``loading._max_length``):
    a candidate counts only when it is an int in 1..positions (Hugging Face writes 1e30 for
    "no limit"), else the next one is tried, else ``min(positions, 512)``.
    """
    config = _read_json(directory / "config.json")
    candidates = [
        _read_json(directory / "metrics.json").get("max_length"),
        _read_json(directory / "tokenizer_config.json").get("model_max_length"),
    ]
    positions = int(config.get("max_position_embeddings", _HARD_MAX_LENGTH))
    if config.get("model_type") == "roberta":
        positions -= 2  # RoBERTa position ids start after the padding index
    for value in candidates:
        if isinstance(value, int) and 0 < value <= positions:
            return value
    return min(positions, _HARD_MAX_LENGTH)


def read_labels(directory: Path) -> list[str]:
    """Class names in index order, from labels.json (or config.json's id2label)."""
    labels = _read_json(directory / "labels.json") or _read_json(directory / "config.json").get(
        "id2label", {}
    )
    if not labels:
        raise ValueError(f"{directory} has no labels.json and no id2label")
    return [str(labels[str(i)]) for i in range(len(labels))]


def softmax(logits: np.ndarray) -> np.ndarray:
    """Row-wise softmax in float32, stable for large logits."""
    shifted = logits.astype(np.float32) - logits.max(axis=1, keepdims=True)
    exp = np.exp(shifted)
    return exp / exp.sum(axis=1, keepdims=True)


# A copy of codecs._VISIBLE (this file cannot import the package).
_VISIBLE = re.compile(
    r"[^\s\x00-\x1f\x7f-\x9f\u00ad\u180e\u200b-\u200f\u202a-\u202e\u2060-\u206f\ufeff]"
)


def validate_texts(raw: np.ndarray, max_chars: int = DEFAULT_MAX_CHARS) -> list[str]:
    """BYTES tensor (batch, 1) or (batch,) -> texts, refusing what the predictor refuses.

    Mirrors ``codecs.validate_texts`` check for check and message for message: invalid
    UTF-8, empty or whitespace-only text, and text over ``max_chars`` characters raise
    :class:`BadInput`. The length is checked before tokenizing, so a 10M-character text
    costs a decode and a length, not a tokenizer pass.
    """
    texts = []
    for i, item in enumerate(raw.reshape(-1)):
        if isinstance(item, bytes | bytearray):
            try:
                item = bytes(item).decode("utf-8")
            except UnicodeDecodeError as exc:
                raise BadInput(f"instance {i} is not valid UTF-8 ({exc.reason})") from exc
        text = str(item)
        if not _VISIBLE.search(text):
            raise BadInput(
                f"instance {i} has no visible text "
                "(empty, or only whitespace, control and zero-width characters)"
            )
        if len(text) > max_chars:
            raise BadInput(f"instance {i} has {len(text)} characters; the limit is {max_chars}")
        texts.append(text)
    return texts


def response_detail() -> str:
    """``full`` or ``label`` from ``MODELDEPLOY_RESPONSE_DETAIL``; unset or unknown is label."""
    return "full" if os.environ.get(ENV_RESPONSE_DETAIL, "").strip() == "full" else "label"


def registry_version(directory: Path, triton_version: str) -> str:
    """The registry version a unit was exported as (``VERSION_FILE``), else Triton's own.

    Repositories exported with the version directory = the registry version have no file;
    their Triton version is the registry's.
    """
    path = directory / VERSION_FILE
    if not path.is_file():
        return str(triton_version)
    value = str(_read_json(path).get("registry_version", ""))
    if not value.isdigit() or int(value) < 1:
        raise UnitIntegrityError(f"{path}: registry_version {value!r} is not a positive integer")
    return value


def manifest_name(version: int | str) -> str:
    """File name of the manifest of one exported version (beside the export's config)."""
    return f"{MANIFEST_PREFIX}{version}.json"


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def verify_unit(repository: Path, export_name: str, model: str, version: str) -> dict[str, Any]:
    """Check version ``version`` of ``model`` against its export's manifest; return it.

    The manifest (``<repository>/<export_name>/modeldeploy-manifest-<version>.json``, the
    format of ``modeldeploy.registry.manifest``, paths relative to the repository) must
    exist, must cover ``<model>/<version>/`` (so files copied under another version number
    are refused), and every file it lists must have its size and SHA-256. A file in a
    covered version directory that it does not list is refused too.
    """
    path = repository / export_name / manifest_name(version)
    if not path.is_file():
        raise UnitIntegrityError(
            f"{path} is missing: refusing to load {model} version {version} unverified "
            "(export it with `modeldeploy triton export`, which writes the manifest)"
        )
    try:
        data = json.loads(path.read_text())
        files = {str(rel): (int(e["size"]), str(e["sha256"])) for rel, e in data["files"].items()}
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise UnitIntegrityError(f"{path}: unreadable manifest ({exc})") from None
    own = f"{model}/{version}/"
    if not any(rel.startswith(own) for rel in files):
        raise UnitIntegrityError(
            f"{path} does not list {own}: these files were exported as another version; "
            f"refusing to serve them under version {version}"
        )
    for rel, (size, sha256) in sorted(files.items()):
        file = repository / rel
        if not file.is_file():
            raise UnitIntegrityError(f"{rel}: listed in {path.name} but missing")
        if file.stat().st_size != size or _sha256(file) != sha256:
            raise UnitIntegrityError(
                f"{rel}: size or SHA-256 differs from {path.name} (altered, truncated or "
                "swapped); refusing to load"
            )
    covered = {
        rel.split("/", 2)[0] + "/" + rel.split("/", 2)[1] for rel in files if rel.count("/") >= 2
    }
    for unit in sorted(covered):
        for file in sorted((repository / unit).rglob("*")):
            rel = file.relative_to(repository).as_posix()
            if file.is_file() and rel not in files and not set(file.parts) & set(_IGNORED_DIRS):
                raise UnitIntegrityError(f"{rel}: not in {path.name} (unexpected file)")
    return data


def label_indexes(probabilities: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(LABEL_INDEX, NUM_LABELS): the predicted class index and the class count per row,
    both INT64 (n, 1); the count is what a label-view answer shows instead of the scores."""
    rows, classes = probabilities.shape
    indexes = probabilities.argmax(axis=1).astype(np.int64).reshape(-1, 1)
    return indexes, np.full((rows, 1), classes, dtype=np.int64)


def to_outputs(probabilities: np.ndarray, labels: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """(LABEL as object array (n, 1) of bytes, PROBABILITIES float32 (n, k))."""
    names = np.array(
        [[labels[int(i)].encode("utf-8")] for i in probabilities.argmax(axis=1)], dtype=np.object_
    )
    return names, probabilities.astype(np.float32)


class OnnxRunner:
    """Run model.onnx with onnxruntime, feeding only the inputs the graph declares."""

    def __init__(self, path: Path, threads: int = 0) -> None:
        import onnxruntime as ort

        options = ort.SessionOptions()
        if threads > 0:
            options.intra_op_num_threads = threads
            options.inter_op_num_threads = 1
        self._session = ort.InferenceSession(
            str(path), sess_options=options, providers=["CPUExecutionProvider"]
        )
        self.input_names = [i.name for i in self._session.get_inputs()]

    def logits(self, encoded: Encoded) -> np.ndarray:
        feeds = {name: encoded.arrays[name] for name in self.input_names}
        return np.asarray(self._session.run(None, feeds)[0])


PRECISIONS = ("fp32", "bf16")
"""What the torch runtime computes in: fp32, or bf16 through ``torch.autocast`` on the CPU
(the predictor's bf16 path where the CPU has bf16 units; export's ``precision``)."""


TORCH_ENVIRONMENT = {"THP_MEM_ALLOC_ENABLE": "1"}
"""Defaults torch reads when it allocates, set where unset before it loads: huge pages for
its blocks of 2 MiB or more, as the Python predictor asks for them
(``modeldeploy.serving.startup.ENVIRONMENT``, which says why; a test holds this copy equal)."""


class TorchRunner:
    """Run the safetensors weights with transformers, in inference mode (``precision``:
    one of :data:`PRECISIONS`; the logits come back as float32 either way)."""

    def __init__(self, directory: Path, threads: int = 0, precision: str = "fp32") -> None:
        for name, value in TORCH_ENVIRONMENT.items():
            os.environ.setdefault(name, value)
        import torch
        from transformers import AutoModelForSequenceClassification

        if precision not in PRECISIONS:
            raise ValueError(f"unknown precision {precision!r}: use one of {PRECISIONS}")
        if threads > 0:
            torch.set_num_threads(threads)
        self._torch = torch
        self.precision = precision
        self._model = AutoModelForSequenceClassification.from_pretrained(directory).eval()
        names = _read_json(directory / "tokenizer_config.json").get("model_input_names")
        self.input_names = list(names or ["input_ids", "attention_mask"])

    def logits(self, encoded: Encoded) -> np.ndarray:
        torch = self._torch
        bf16 = self.precision == "bf16"
        with torch.inference_mode(), torch.autocast("cpu", torch.bfloat16, enabled=bf16):
            feeds = {n: torch.from_numpy(encoded.arrays[n]) for n in self.input_names}
            return self._model(**feeds).logits.float().numpy()


class Classifier:
    """Texts in, (labels, probabilities) out; the whole ``full`` stage without Triton."""

    def __init__(
        self, directory: Path, runtime: str = "onnx", threads: int = 0, precision: str = "fp32"
    ) -> None:
        self.labels = read_labels(directory)
        self.encoder = TextEncoder(directory)
        if runtime == "onnx":
            if precision != "fp32":
                raise ValueError(f"precision {precision!r} needs the torch runtime")
            self.runner: OnnxRunner | TorchRunner = OnnxRunner(directory / "model.onnx", threads)
        elif runtime == "torch":
            self.runner = TorchRunner(directory, threads, precision)
        else:
            raise ValueError(f"unknown runtime {runtime!r}: use 'onnx' or 'torch'")

    def classify(self, texts: Sequence[str], on_issue: Any = None) -> tuple[np.ndarray, np.ndarray]:
        """``on_issue(reason)``: called once per tokenization failure reason of each input."""
        encoded = self.encoder.encode(texts)
        if on_issue is not None:
            for issues in encoded.issues:
                for reason in issues:
                    on_issue(reason)
        logits = self.runner.logits(encoded)
        if not np.all(np.isfinite(logits)):
            raise FloatingPointError("the model produced NaN or infinite logits")
        return to_outputs(softmax(logits), self.labels)


def _read_json(path: Path) -> dict[str, Any]:
    if not path.is_file():
        return {}
    return dict(json.loads(path.read_text()))


def _parameters(model_config: dict[str, Any]) -> dict[str, str]:
    raw = model_config.get("parameters") or {}
    return {key: str(value.get("string_value", "")) for key, value in raw.items()}


class ArmMetrics:
    """The ``modeldeploy_*`` series of one served version, through Triton's custom metrics.

    ``pb_utils.MetricFamily`` series appear on Triton's own ``/metrics`` (port 8002) beside
    ``nv_*``, with the names, labels and buckets of ``modeldeploy.serving.metrics``, so the
    analysis judges a Triton arm like a Python one. Every child exists from load (at 0).
    """

    def __init__(self, pb_utils: Any, base: dict[str, str], labels: Sequence[str]) -> None:
        family = pb_utils.MetricFamily
        self._families = {
            name: family(name=name, description=METRIC_HELP[name], kind=kind)
            for name, kind in (
                (METRIC_REQUESTS, family.COUNTER),
                (METRIC_NAN_OUTPUTS, family.COUNTER),
                (METRIC_PREDICTIONS, family.COUNTER),
                (METRIC_DURATION, family.HISTOGRAM),
                (METRIC_TOKENIZATION_FAILURES, family.COUNTER),
                (METRIC_CPU_SECONDS, family.COUNTER),
            )
        }
        requests = self._families[METRIC_REQUESTS]
        self.requests = {o: requests.Metric(labels={**base, "outcome": o}) for o in OUTCOMES}
        self.nan_outputs = self._families[METRIC_NAN_OUTPUTS].Metric(labels=dict(base))
        predictions = self._families[METRIC_PREDICTIONS]
        self.predictions = {n: predictions.Metric(labels={**base, "label": n}) for n in labels}
        self.duration = self._families[METRIC_DURATION].Metric(
            labels={**base, "protocol": TRITON_PROTOCOL}, buckets=list(latency_buckets())
        )
        failures = self._families[METRIC_TOKENIZATION_FAILURES]
        self.tokenization_failures = {
            r: failures.Metric(labels={**base, "reason": r}) for r in TOKENIZATION_FAILURE_REASONS
        }

        # This stub process serves only this model instance: all its CPU time is the arm's,
        # charged as it is used (Triton's counters cannot be read at scrape time).
        self.cpu_seconds = self._families[METRIC_CPU_SECONDS].Metric(labels=dict(base))
        self._cpu_mark = 0.0
        self.charge_cpu()

    def tokenization_failure(self, reason: str) -> None:
        self.tokenization_failures[reason].increment(1)

    def charge_cpu(self) -> None:
        """Add the CPU time this process used since the last call (load included)."""
        now = time.process_time()
        self.cpu_seconds.increment(now - self._cpu_mark)
        self._cpu_mark = now

    def observe(self, outcome: str, seconds: float) -> None:
        self.requests[outcome].increment(1)
        self.duration.observe(seconds)

    def close(self) -> None:
        """Metrics before their families, as the Python backend requires."""
        self.requests = {}
        self.predictions = {}
        self.tokenization_failures = {}
        self.nan_outputs = self.duration = self.cpu_seconds = None
        self._families = {}


def metric_labels(model_version: str, default_deployment: str) -> dict[str, str]:
    """``deployment``, ``model_version``, ``role``: the labels every series carries.

    Deployment and role come from the container's environment (``MODELDEPLOY_DEPLOYMENT``,
    ``MODELDEPLOY_ROLE``), which the operator sets per arm; the version is the registry's
    (``registry_version``: the unit's own file, else Triton's version directory).
    """
    return {
        "deployment": os.environ.get(ENV_DEPLOYMENT) or default_deployment,
        "model_version": str(model_version),
        "role": os.environ.get(ENV_ROLE) or "stable",
    }


class TritonPythonModel:
    """The class Triton's Python backend instantiates; a thin adapter over the pure parts.

    Requests that Triton's dynamic batcher hands over together are concatenated into one
    forward pass and split again, so batching happens across clients, not per request.
    A request with a refused text is answered INVALID_ARG on its own; the others in the
    batch are still scored.
    """

    def initialize(self, args: dict[str, str]) -> None:
        model_config = json.loads(args["model_config"])
        params = _parameters(model_config)
        model_dir = Path(args["model_repository"])
        version = str(args["model_version"])
        directory = model_dir / version
        verify_unit(
            model_dir.parent, params.get("export_name") or model_dir.name, model_dir.name, version
        )
        self.stage = params.get("stage", "full")
        self.full_view = response_detail() == "full"
        self.max_chars = int(params.get("max_chars") or DEFAULT_MAX_CHARS)
        threads = int(params.get("threads") or 0)
        labels: list[str] = []
        if self.stage == "full":
            self.classifier = Classifier(
                directory,
                params.get("runtime", "onnx"),
                threads,
                params.get("precision") or "fp32",
            )
            labels = self.classifier.labels
        elif self.stage == "tokenize":
            self.encoder = TextEncoder(directory, pad_to_max_length=True)
            self.input_names = list(
                params.get("input_names", "input_ids,attention_mask").split(",")
            )
        elif self.stage == "postprocess":
            self.labels = read_labels(directory)
        else:
            raise ValueError(f"unknown stage {self.stage!r}")
        self.metrics: ArmMetrics | None = None
        if self.stage == "full":  # the ensemble's parts cannot time a whole request
            import triton_python_backend_utils as pb_utils

            served = registry_version(directory, version)
            base = metric_labels(served, params.get("export_name") or model_dir.name)
            self.metrics = ArmMetrics(pb_utils, base, labels)

    def finalize(self) -> None:
        if self.metrics is not None:
            self.metrics.close()
            self.metrics = None

    def execute(self, requests: list[Any]) -> list[Any]:
        import triton_python_backend_utils as pb_utils

        if self.stage == "postprocess":
            return [self._postprocess(pb_utils, request) for request in requests]
        started = time.perf_counter()
        responses: list[Any] = [None] * len(requests)
        outcomes = ["ok"] * len(requests)
        texts: list[str] = []
        spans: list[tuple[int, int, int]] = []
        for index, request in enumerate(requests):
            raw = pb_utils.get_input_tensor_by_name(request, "TEXT").as_numpy()
            try:
                batch = validate_texts(raw, self.max_chars)
            except BadInput as exc:
                responses[index] = _error(pb_utils, str(exc), pb_utils.TritonError.INVALID_ARG)
                outcomes[index] = "bad_input"
                continue
            spans.append((index, len(texts), len(texts) + len(batch)))
            texts.extend(batch)
        try:
            if not texts:
                return responses
            if self.stage == "tokenize":
                arrays = self.encoder.encode(texts).arrays
                for index, start, stop in spans:
                    tensors = [
                        pb_utils.Tensor(name.upper(), arrays[name][start:stop])
                        for name in self.input_names
                    ]
                    responses[index] = pb_utils.InferenceResponse(output_tensors=tensors)
                return responses
            on_issue = None if self.metrics is None else self.metrics.tokenization_failure
            try:
                names, probabilities = self.classifier.classify(texts, on_issue)
            except Exception as exc:  # one bad batch must answer every request, not hang them
                if isinstance(exc, FloatingPointError) and self.metrics is not None:
                    self.metrics.nan_outputs.increment(len(spans))
                for index, _, _ in spans:
                    responses[index] = _error(pb_utils, f"{type(exc).__name__}: {exc}")
                    outcomes[index] = "error"
                return responses
            indexes, counts = label_indexes(probabilities)
            for index, start, stop in spans:
                tensors = [
                    pb_utils.Tensor("LABEL", names[start:stop]),
                    pb_utils.Tensor("LABEL_INDEX", indexes[start:stop]),
                    pb_utils.Tensor("NUM_LABELS", counts[start:stop]),
                ]
                if self.full_view:
                    tensors.append(pb_utils.Tensor("PROBABILITIES", probabilities[start:stop]))
                responses[index] = pb_utils.InferenceResponse(output_tensors=tensors)
            if self.metrics is not None:
                for name in names.reshape(-1):
                    self.metrics.predictions[name.decode("utf-8")].increment(1)
            return responses
        finally:
            if self.metrics is not None:
                seconds = time.perf_counter() - started
                for outcome in outcomes:
                    self.metrics.observe(outcome, seconds)
                self.metrics.charge_cpu()

    def _postprocess(self, pb_utils: Any, request: Any) -> Any:
        logits = pb_utils.get_input_tensor_by_name(request, "LOGITS").as_numpy()
        if not np.all(np.isfinite(logits)):
            return _error(pb_utils, "the model produced NaN or infinite logits")
        names, probabilities = to_outputs(softmax(logits), self.labels)
        indexes, counts = label_indexes(probabilities)
        return pb_utils.InferenceResponse(
            output_tensors=[
                pb_utils.Tensor("LABEL", names),
                pb_utils.Tensor("LABEL_INDEX", indexes),
                pb_utils.Tensor("NUM_LABELS", counts),
                pb_utils.Tensor("PROBABILITIES", probabilities),
            ]
        )


def _error(pb_utils: Any, message: str, code: Any = None) -> Any:
    error = pb_utils.TritonError(message) if code is None else pb_utils.TritonError(message, code)
    return pb_utils.InferenceResponse(output_tensors=[], error=error)
