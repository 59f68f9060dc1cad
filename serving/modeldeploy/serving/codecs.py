"""Request parsing, tokenization and response shaping: pure functions, no I/O.

The transports (v1 JSON, v2 REST, v2 gRPC) differ only in how texts arrive and how
results leave; everything in between is shared here so every protocol validates
and answers the same way.

Truncation policy (explicit, and reported in every response): an input whose
token count exceeds ``max_length`` is cut to its first ``max_length`` tokens
(mode ``truncate``, flagged per item and counted) or refused with a 400 (mode
``reject``). In both modes a text longer than ``max_chars`` characters is refused
before tokenization, so one request cannot buy unbounded tokenizer CPU.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from modeldeploy.serving.contract.ids import REQUEST_ID_HEADER as REQUEST_ID_HEADER
from modeldeploy.serving.contract.ids import RequestIdError, new_request_id, parse_request_id
from modeldeploy.serving.contract.ids import item_ids as item_ids
from modeldeploy.serving.contract.names import UNKNOWN_TOKEN_SHARE_LIMIT
from modeldeploy.serving.errors import (
    EmptyText,
    InvalidUtf8,
    MalformedRequest,
    NanOutput,
    TextTooLong,
    TokenizationFailed,
    TooManyInstances,
    WrongType,
)

TruncationMode = Literal["truncate", "reject"]
FULL_DETAIL = "full"
"""``--response-detail full``: today's whole answer. Anything else is the label view
(:func:`v1_label_response`, :func:`v2_label_arrays`)."""


@dataclass(frozen=True)
class TruncationPolicy:
    max_length: int = 64
    mode: TruncationMode = "truncate"
    max_chars: int = 10_000

    def describe(self) -> dict[str, Any]:
        return {"max_length": self.max_length, "mode": self.mode, "max_chars": self.max_chars}


@dataclass(frozen=True)
class ParsedRequest:
    """What every protocol reduces to: texts plus the id that names this request."""

    texts: list[str]
    request_id: str
    protocol: str
    binary_outputs: bool = False


@dataclass(frozen=True)
class Encoded:
    ids: list[int]
    truncated: bool
    issues: tuple[str, ...] = ()
    """Reasons this input counts in ``modeldeploy_tokenization_failures_total``."""


@dataclass(frozen=True)
class Prediction:
    label: str
    label_index: int
    probabilities: list[float]
    truncated: bool
    tokens: int
    item_id: str = ""


# --- request ids ---------------------------------------------------------------------


def request_id_from(supplied: object, headers: Mapping[str, str] | None) -> str:
    """The client's id (v2 ``id`` first, then ``x-request-id``), or a fresh random UUID.

    Honouring the client's id lets the router pass one id to both arms, so feedback
    for that id reaches each arm's stored prediction.
    """
    for candidate in (supplied, (headers or {}).get(REQUEST_ID_HEADER)):
        try:
            found = parse_request_id(candidate)
        except RequestIdError as exc:
            raise MalformedRequest(str(exc)) from exc
        if found is not None:
            return found
    return new_request_id()


# --- parsing --------------------------------------------------------------------------


# Anything but whitespace, C0/C1 controls and the invisible format characters (zero-width
# space/joiners, direction marks, word joiner, BOM): a text with none of it has no content
# the model could read, and is refused rather than scored.
_VISIBLE = re.compile(
    r"[^\s\x00-\x1f\x7f-\x9f\u00ad\u180e\u200b-\u200f\u202a-\u202e\u2060-\u206f\ufeff]"
)


def validate_texts(
    items: Sequence[object], max_instances: int, policy: TruncationPolicy
) -> list[str]:
    """Check the list of instances and return them as texts, or raise a typed BadInput."""
    if len(items) == 0:
        raise EmptyText("no instances: send at least one text")
    if len(items) > max_instances:
        raise TooManyInstances(
            f"{len(items)} instances in one request; the limit is {max_instances}"
        )
    texts: list[str] = []
    for i, item in enumerate(items):
        if isinstance(item, bytes | bytearray):
            try:
                item = bytes(item).decode("utf-8")
            except UnicodeDecodeError as exc:
                raise InvalidUtf8(f"instance {i} is not valid UTF-8 ({exc.reason})") from exc
        if not isinstance(item, str):
            raise WrongType(f"instance {i} is {type(item).__name__}; expected a string of text")
        if not _VISIBLE.search(item):
            raise EmptyText(
                f"instance {i} has no visible text "
                "(empty, or only whitespace, control and zero-width characters)"
            )
        if len(item) > policy.max_chars:
            raise TextTooLong(
                f"instance {i} has {len(item)} characters; the limit is {policy.max_chars}"
            )
        texts.append(item)
    return texts


def parse_v1(
    body: object,
    headers: Mapping[str, str] | None,
    max_instances: int,
    policy: TruncationPolicy,
) -> ParsedRequest:
    """``{"instances": ["text", ...]}`` (also accepts ``{"text": ...}`` items).

    kserve hands over raw bytes when the client sent no JSON content type (curl's
    default form type, for example), so those are decoded here.
    """
    if isinstance(body, bytes | bytearray):
        try:
            body = json.loads(body)
        except UnicodeDecodeError as exc:
            raise InvalidUtf8(f"request body is not valid UTF-8 ({exc.reason})") from exc
        except ValueError as exc:
            raise MalformedRequest(f"request body is not valid JSON: {exc}") from exc
    if not isinstance(body, dict):
        raise MalformedRequest('expected a JSON object like {"instances": ["some text"]}')
    instances = body.get("instances")
    if instances is None:
        raise MalformedRequest('missing "instances": send {"instances": ["some text"]}')
    if not isinstance(instances, list):
        raise WrongType('"instances" must be a list of strings')
    items = [i["text"] if isinstance(i, dict) and "text" in i else i for i in instances]
    texts = validate_texts(items, max_instances, policy)
    return ParsedRequest(texts, request_id_from(body.get("id"), headers), "v1")


def parse_v2(
    request: Any,
    headers: Mapping[str, str] | None,
    max_instances: int,
    policy: TruncationPolicy,
) -> ParsedRequest:
    """An Open Inference Protocol request (kserve ``InferRequest``) with one BYTES input."""
    inputs = list(getattr(request, "inputs", None) or [])
    if len(inputs) != 1:
        raise MalformedRequest(f"expected exactly one BYTES input of texts, got {len(inputs)}")
    tensor = inputs[0]
    if tensor.datatype != "BYTES":
        raise WrongType(f"input {tensor.name!r} has datatype {tensor.datatype}; expected BYTES")
    shape = [int(d) for d in tensor.shape]
    if len(shape) not in (1, 2) or (len(shape) == 2 and shape[1] != 1):
        raise MalformedRequest(f"input shape {shape} unsupported; send [N] or [N, 1]")
    try:
        values = tensor.as_numpy().reshape(-1).tolist()
    except Exception as exc:  # kserve raises several types for a malformed tensor
        raise MalformedRequest(f"could not read input {tensor.name!r}: {exc}") from exc
    if len(values) != shape[0]:
        raise MalformedRequest(f"shape says {shape[0]} items but {len(values)} were sent")
    texts = validate_texts(values, max_instances, policy)
    from_grpc = bool(getattr(request, "from_grpc", False))
    return ParsedRequest(
        texts,
        request_id_from(getattr(request, "id", None), headers),
        "grpc" if from_grpc else "v2",
        binary_outputs=bool(request.use_binary_outputs),
    )


# --- tokenization ---------------------------------------------------------------------


@dataclass
class TextEncoder:
    """The checkpoint's own fast tokenizer, with the truncation policy applied.

    Uses ``tokenizers`` directly (not ``transformers``): it loads in milliseconds,
    and ``no_padding()`` guarantees nothing baked into tokenizer.json pads to a
    fixed length; padding happens per batch, to the longest item.
    """

    tokenizer: Any
    pad_id: int
    policy: TruncationPolicy
    token_types: bool = False
    unk_id: int | None = None
    _probe_limit: int = field(init=False, default=0)

    @classmethod
    def from_directory(cls, path: Path, policy: TruncationPolicy, token_types: bool) -> TextEncoder:
        from tokenizers import Tokenizer

        tokenizer = Tokenizer.from_file(str(path / "tokenizer.json"))
        config = json.loads((path / "tokenizer_config.json").read_text())
        pad_token = config.get("pad_token") or "[PAD]"
        pad_id = tokenizer.token_to_id(pad_token if isinstance(pad_token, str) else "[PAD]")
        if pad_id is None:
            raise ValueError(f"pad token {pad_token!r} is not in the vocabulary of {path}")
        return cls(tokenizer, pad_id, policy, token_types, unknown_token_id(tokenizer, config))

    def __post_init__(self) -> None:
        self.tokenizer.no_padding()
        # Truncate at max_length + 1 so one pass tells "fits" from "too long".
        self._probe_limit = self.policy.max_length + 1
        self.tokenizer.enable_truncation(self._probe_limit)

    def encode(
        self, texts: Sequence[str], on_issue: Callable[[str], None] = lambda reason: None
    ) -> list[Encoded]:
        """Token ids per text; ``on_issue(reason)`` once per tokenization failure reason of
        each input (``contract.names.TOKENIZATION_FAILURE_REASONS``), called before an input
        is refused so a refused input is counted too."""
        try:
            # Without character offsets, which nothing here reads: the same ids and
            # special-token masks (a unit test holds them equal), about 18% less time.
            encodings = self.tokenizer.encode_batch_fast(list(texts))
        except Exception as exc:
            on_issue("error")
            raise TokenizationFailed(f"the tokenizer could not encode the input: {exc}") from exc
        out: list[Encoded] = []
        limit = self.policy.max_length
        for i, enc in enumerate(encodings):
            ids = list(enc.ids)
            too_long = len(ids) > limit
            special = sum(enc.special_tokens_mask)
            unknown = 0 if self.unk_id is None else ids.count(self.unk_id)
            issues = tokenization_issues(len(ids) - special, unknown, too_long)
            for reason in issues:
                on_issue(reason)
            if len(ids) == 0:
                raise TokenizationFailed(f"instance {i} produced no tokens")
            if too_long and self.policy.mode == "reject":
                raise TextTooLong(
                    f"instance {i} has more than {limit} tokens and the truncation policy "
                    "is 'reject'"
                )
            if too_long:
                ids = _truncate_keeping_last(ids, limit)
            out.append(Encoded(ids, too_long, issues))
        return out


def unknown_token_id(tokenizer: Any, config: Mapping[str, Any]) -> int | None:
    """The id of the checkpoint's unknown token (``unk_token``), or None when it has none
    (byte-level BPE such as RoBERTa's can encode any text, so it never produces one)."""
    unk = config.get("unk_token") or getattr(tokenizer.model, "unk_token", None)
    if isinstance(unk, dict):  # older tokenizer_config.json: an AddedToken object
        unk = unk.get("content")
    return tokenizer.token_to_id(unk) if isinstance(unk, str) else None


def tokenization_issues(content: int, unknown: int, too_long: bool) -> tuple[str, ...]:
    """The failure reasons of one input (docs/metrics.md), from counts before truncation.

    ``content``: tokens other than the special ones ([CLS], [SEP], ...); ``unknown``: how
    many of them are the unknown token; ``too_long``: more tokens than the max length.
    The Triton backend keeps a copy of this rule (a unit test holds the two equal).
    """
    issues = []
    if content <= 0:
        issues.append("empty")
    if too_long:
        issues.append("over_limit")
    if content > 0 and unknown / content > UNKNOWN_TOKEN_SHARE_LIMIT:
        issues.append("unknown_tokens")
    return tuple(issues)


def _truncate_keeping_last(ids: list[int], limit: int) -> list[int]:
    """Cut to ``limit`` tokens, keeping the final special token ([SEP] or </s>)."""
    return [*ids[: limit - 1], ids[-1]]


def pad_batch(sequences: Sequence[Sequence[int]], pad_id: int) -> tuple[np.ndarray, np.ndarray]:
    """Pad to the longest sequence in this batch (not to max length): ids and mask."""
    width = max(len(s) for s in sequences)
    ids = np.full((len(sequences), width), pad_id, dtype=np.int64)
    mask = np.zeros((len(sequences), width), dtype=np.int64)
    for row, seq in enumerate(sequences):
        ids[row, : len(seq)] = seq
        mask[row, : len(seq)] = 1
    return ids, mask


# --- outputs --------------------------------------------------------------------------


NAN_MESSAGE = "the model produced NaN or infinite logits; no prediction was made"


def softmax(logits: np.ndarray) -> np.ndarray:
    """Row-wise softmax; raises NanOutput if any logit is not finite."""
    logits = np.asarray(logits, dtype=np.float64)
    if not np.all(np.isfinite(logits)):
        raise NanOutput(NAN_MESSAGE)
    shifted = logits - logits.max(axis=-1, keepdims=True)
    exp = np.exp(shifted)
    return exp / exp.sum(axis=-1, keepdims=True)


@dataclass(frozen=True, slots=True)
class Scored:
    """One row's class probabilities and its most probable class (the first on a tie)."""

    probabilities: list[float]
    label_index: int


def score_rows(logits: np.ndarray) -> list[Scored | None]:
    """Softmax and argmax of every row at once; None for a row with a NaN or infinite logit.

    The batcher calls this once per batch in the inference thread
    (``DynamicBatcher(finish=...)``): a handful of numpy calls for all rows, where a
    softmax and a Python conversion per request on the event loop cost about 30 us each.
    A row's figures are those :func:`softmax` gives it alone.
    """
    values = np.asarray(logits, dtype=np.float64)
    finite = np.isfinite(values).all(axis=-1)
    probabilities = softmax(np.where(finite[:, None], values, 0.0))
    best = probabilities.argmax(axis=-1)
    return [
        Scored(row, index) if ok else None
        for row, index, ok in zip(
            probabilities.tolist(), best.tolist(), finite.tolist(), strict=True
        )
    ]


def require_finite(scored: Sequence[Scored | None]) -> list[Scored]:
    """The rows, or :class:`NanOutput` when any of them had a NaN or infinite logit."""
    if any(row is None for row in scored):
        raise NanOutput(NAN_MESSAGE)
    return list(scored)  # type: ignore[arg-type]  # no None left


def load_labels(path: Path, num_labels: int) -> list[str]:
    """Class names by index from labels.json (falls back to the indices as names)."""
    file = path / "labels.json"
    if not file.exists():
        return [str(i) for i in range(num_labels)]
    mapping = json.loads(file.read_text())
    return [str(mapping.get(str(i), i)) for i in range(num_labels)]


def make_predictions(
    scored: Sequence[Scored], encoded: Sequence[Encoded], labels: Sequence[str], ids: Sequence[str]
) -> list[Prediction]:
    return [
        Prediction(
            label=labels[row.label_index],
            label_index=row.label_index,
            probabilities=row.probabilities,
            truncated=enc.truncated,
            tokens=len(enc.ids),
            item_id=item_id,
        )
        for row, enc, item_id in zip(scored, encoded, ids, strict=True)
    ]


def v1_response(
    predictions: Sequence[Prediction],
    labels: Sequence[str],
    request: ParsedRequest,
    model_name: str,
    model_version: str,
    policy: TruncationPolicy,
) -> dict[str, Any]:
    return {
        "predictions": [
            {
                "id": p.item_id,
                "label": p.label,
                "label_index": p.label_index,
                "probabilities": dict(zip(labels, p.probabilities, strict=True)),
                "confidence": max(p.probabilities),
                "tokens": p.tokens,
                "truncated": p.truncated,
            }
            for p in predictions
        ],
        "request_id": request.request_id,
        "model_name": model_name,
        "model_version": model_version,
        "truncation": policy.describe(),
    }


def v2_output_arrays(predictions: Sequence[Prediction]) -> dict[str, np.ndarray]:
    """Output tensors by name: label (BYTES), label_index (INT64), probabilities (FP32)."""
    return {
        "label": np.array([p.label.encode() for p in predictions], dtype=np.object_),
        "label_index": np.array([p.label_index for p in predictions], dtype=np.int64),
        "probabilities": np.array([p.probabilities for p in predictions], dtype=np.float32),
        "truncated": np.array([p.truncated for p in predictions], dtype=np.bool_),
    }


def v2_parameters(
    predictions: Sequence[Prediction], model_version: str, policy: TruncationPolicy
) -> dict[str, Any]:
    return {
        "model_version": model_version,
        "truncated_count": sum(p.truncated for p in predictions),
        "max_length": policy.max_length,
        "truncation": policy.mode,
    }


# --- the client's view (``--response-detail label``, the default) ----------------------
#
# An answer must not tell a client which arm served it: one that knows can label only the
# requests of the arm it wants to win (docs/metrics.md, "Label contract"). The label view
# keeps what a client needs to act and to post a label: the predicted class (name and
# index), the request id, the model's name and its class names. It drops the version,
# the per-class probabilities and confidence (a fingerprint of the weights), and the token
# counts and truncation limits (a fingerprint of the tokenizer and max length). The
# arms' own records (metrics, the joiner's events) carry the rest.


def v1_label_response(
    predictions: Sequence[Prediction],
    labels: Sequence[str],
    request: ParsedRequest,
    model_name: str,
) -> dict[str, Any]:
    """The v1 answer in the label view; ``labels`` are the class names, in index order."""
    return {
        "predictions": [
            {"id": p.item_id, "label": p.label, "label_index": p.label_index} for p in predictions
        ],
        "request_id": request.request_id,
        "model_name": model_name,
        "labels": list(labels),
    }


def v2_label_arrays(predictions: Sequence[Prediction]) -> dict[str, np.ndarray]:
    """The label view's output tensors: label (BYTES) and label_index (INT64)."""
    return {
        "label": np.array([p.label.encode() for p in predictions], dtype=np.object_),
        "label_index": np.array([p.label_index for p in predictions], dtype=np.int64),
    }


def v2_label_parameters(labels: Sequence[str]) -> dict[str, Any]:
    """The label view's response parameters: how many classes there are (no version), so
    the joiner can check a label's class index without probabilities to count."""
    return {"num_labels": len(labels)}
