"""The predictor's command line: its options, the parser, and the exact inverse that builds it.

Both platforms start predictors: KServe as container ``args``, local mode as a process
``argv``. Both build the list with :func:`predictor_args`, and the predictor parses it with
:func:`add_arguments`, so the option names, defaults and types exist once and
``parse_predictor_args(predictor_args(o)) == o`` for every :class:`PredictorOptions` ``o``.
Stdlib only: the operator imports this without torch or kserve.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from modeldeploy.serving.contract.latency import DEFAULT_LATENCY_WARMUP_REQUESTS
from modeldeploy.serving.contract.names import ROLES
from modeldeploy.serving.contract.store import DEFAULT_STORE_CAPACITY, DEFAULT_STORE_TTL_S

PREDICTOR_MODULE = "modeldeploy.serving"
"""``python -m`` target of a predictor process."""
PREDICTOR_RUNTIMES = ("torch", "onnx", "onnx-int8")
PRECISIONS = ("auto", "fp32", "bf16", "fp16")
"""``auto``: bf16 where the CPU has AMX or AVX-512 bf16 (or on a GPU), else fp32; parity-gated."""
TRUNCATION_MODES = ("truncate", "reject")
RESPONSE_DETAILS = ("label", "full")
"""What a client's answer carries (``--response-detail``; the spec's
``serving.responseDetail``). ``label``: the predicted class and the request id, nothing that
tells the arms apart; ``full``: also the model version, per-class probabilities, confidence
and token counts, which let a client learn which arm served it and label selectively."""
DEFAULT_RESPONSE_DETAIL = "label"
DEFAULT_MODEL_NAME = "classifier"
DEFAULT_HOST = "0.0.0.0"
"""In a pod the predictor must answer on the pod's address; local mode passes 127.0.0.1."""
LOOPBACK = "127.0.0.1"
DEFAULT_HTTP_PORT = 8080
DEFAULT_GRPC_PORT = 8081
DEFAULT_PAIRED_SHARE = 1.0
"""Fraction of canary requests that stable also scores as they are served (the router's
option is in percent).

All of them by default, on top of pairing on label arrival (``--pair-on-label-rate``, which
pairs stable-served labels too). The share is not there for the labels: it keeps stable
under the canary's load, so the P99 comparison compares like with like. Without it, at a
100% step stable serves only re-scores while the canary serves every user request, and on
shared cores the canary's P99 is higher for that reason alone (measured in the quick demo:
canary P99 in [138, 204] ms against stable in [103, 152] ms for two equal tiny models). It
costs stable compute equal to the canary's share of traffic."""

SOURCE_GROUP = "model source (one of)"


def _meta(
    kind: type, help: str, *, choices: Sequence[str] | None = None, group: str | None = None
) -> dict[str, Any]:
    """How an option is parsed and described (kept in the dataclass field's metadata)."""
    return {"kind": kind, "help": help, "choices": choices, "group": group}


DEFAULT_PACK_ROW_TOKENS = 64
"""Row width the torch runtime packs sentences into on CPU (serving/packing.py: rows
about as wide as the longest short sentence measured fastest; 0 pads each batch)."""


@dataclass(frozen=True)
class PredictorOptions:
    """Every option of ``python -m modeldeploy.serving``, with its default."""

    model_dir: Path | None = field(
        default=None,
        metadata=_meta(Path, "a local Hugging Face checkpoint directory", group=SOURCE_GROUP),
    )
    registry_uri: str | None = field(
        default=None,
        metadata=_meta(str, "MLflow registry URI (with --model and --version)", group=SOURCE_GROUP),
    )
    model: str | None = field(
        default=None, metadata=_meta(str, "registered model name", group=SOURCE_GROUP)
    )
    version: str | None = field(
        default=None, metadata=_meta(str, "version number or alias", group=SOURCE_GROUP)
    )
    fetch_cache: Path | None = field(
        default=None,
        metadata=_meta(Path, "where verified registry downloads are kept", group=SOURCE_GROUP),
    )
    name: str = field(
        default=DEFAULT_MODEL_NAME, metadata=_meta(str, "model name in the URLs (/v1/models/NAME)")
    )
    deployment: str = field(
        default="local", metadata=_meta(str, "deployment label on every metric")
    )
    role: str = field(
        default="stable", metadata=_meta(str, "role label on every metric", choices=ROLES)
    )
    model_version: str | None = field(
        default=None, metadata=_meta(str, "model_version label (default: the version)")
    )
    host: str = field(
        default=DEFAULT_HOST,
        metadata=_meta(str, "REST address to bind (local mode: 127.0.0.1, loopback only)"),
    )
    http_port: int = field(default=DEFAULT_HTTP_PORT, metadata=_meta(int, "REST port"))
    grpc_port: int = field(
        default=DEFAULT_GRPC_PORT, metadata=_meta(int, "gRPC port; 0 disables gRPC")
    )
    max_batch_size: int = field(default=32, metadata=_meta(int, "items per forward pass"))
    max_batch_delay_ms: float = field(
        default=5.0, metadata=_meta(float, "longest wait for a batch to fill")
    )
    pack_row_tokens: int = field(
        default=DEFAULT_PACK_ROW_TOKENS,
        metadata=_meta(
            int, "CPU torch, ONNX: pack sentences into rows of this many tokens (0: pad)"
        ),
    )
    max_instances: int = field(default=64, metadata=_meta(int, "texts per request"))
    max_length: int | None = field(
        default=None, metadata=_meta(int, "tokens (default: the model's)")
    )
    truncation: str = field(
        default="truncate", metadata=_meta(str, "over max length", choices=TRUNCATION_MODES)
    )
    max_chars: int = field(default=10_000, metadata=_meta(int, "characters per text"))
    max_body_bytes: int = field(default=1_000_000, metadata=_meta(int, "request body limit"))
    runtime: str = field(
        default="torch", metadata=_meta(str, "inference runtime", choices=PREDICTOR_RUNTIMES)
    )
    precision: str = field(
        default="auto",
        metadata=_meta(
            str,
            "torch precision; auto: bf16 where the CPU has AMX or AVX-512 bf16 (parity-gated)",
            choices=PRECISIONS,
        ),
    )
    parity_tolerance: float = field(
        default=0.01, metadata=_meta(float, "max accuracy drop of ONNX vs torch")
    )
    threads: int = field(default=0, metadata=_meta(int, "0: all available cores"))
    feedback_ttl_s: float = field(
        default=DEFAULT_STORE_TTL_S, metadata=_meta(float, "feedback store TTL")
    )
    feedback_capacity: int = field(
        default=DEFAULT_STORE_CAPACITY, metadata=_meta(int, "feedback store size")
    )
    latency_warmup_requests: int = field(
        default=DEFAULT_LATENCY_WARMUP_REQUESTS,
        metadata=_meta(
            int, "first requests of this process kept out of the latency histogram (still counted)"
        ),
    )
    access_log: bool = field(default=False, metadata=_meta(bool, "log every request"))
    label_token_file: Path | None = field(
        default=None,
        metadata=_meta(
            Path, "tokens that may post labels, one per line (with --control-token-file)"
        ),
    )
    control_token_file: Path | None = field(
        default=None,
        metadata=_meta(Path, "the platform's control token: request-id signing key, router hop"),
    )
    response_detail: str = field(
        default=DEFAULT_RESPONSE_DETAIL,
        metadata=_meta(
            str,
            "what answers show: label (class and request id only) or full (version, probabilities)",
            choices=RESPONSE_DETAILS,
        ),
    )
    labels_at_joiner: bool = field(
        default=False,
        metadata=_meta(
            bool,
            "labels are joined by the joiner (KServe): no /v1/feedback here, none counted twice",
        ),
    )

    @classmethod
    def from_registry(
        cls, registry_uri: str, model: str, version: str, deployment: str, role: str, **more: Any
    ) -> PredictorOptions:
        """A registry version served under the registered model's name, labelled by version.

        The platforms use this, so a model answers at ``/v1/models/<model>`` on a cluster
        and in local mode alike.
        """
        base = cls(
            registry_uri=registry_uri,
            model=model,
            version=version,
            name=model,
            deployment=deployment,
            role=role,
            model_version=version,
        )
        return replace(base, **more)


ALWAYS_WRITTEN = frozenset(
    {
        "name",
        "deployment",
        "role",
        "http_port",
        "grpc_port",
        "latency_warmup_requests",
        "response_detail",
    }
)
"""Written even at their default, so a predictor image with other defaults cannot change them."""


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Declare every option of :class:`PredictorOptions` (parsing happens in the caller)."""
    groups: dict[str, Any] = {}
    for f in fields(PredictorOptions):
        meta = f.metadata
        target = parser
        if meta["group"]:
            target = groups.setdefault(meta["group"], parser.add_argument_group(meta["group"]))
        if meta["kind"] is bool:
            target.add_argument(_flag(f.name), action="store_true", help=meta["help"])
            continue
        target.add_argument(
            _flag(f.name),
            type=meta["kind"],
            default=f.default,
            choices=meta["choices"],
            help=meta["help"],
        )


def options_from(args: argparse.Namespace) -> PredictorOptions:
    """The parsed options as a :class:`PredictorOptions`."""
    return PredictorOptions(**{f.name: getattr(args, f.name) for f in fields(PredictorOptions)})


def parse_predictor_args(argv: Sequence[str]) -> PredictorOptions:
    """Parse a predictor command line (without the ``python -m`` prefix)."""
    parser = argparse.ArgumentParser(prog=f"python -m {PREDICTOR_MODULE}", exit_on_error=False)
    add_arguments(parser)
    return options_from(parser.parse_args(list(argv)))


def predictor_args(options: PredictorOptions) -> list[str]:
    """The command-line arguments that make a predictor parse exactly ``options``."""
    out: list[str] = []
    for f in fields(PredictorOptions):
        value = getattr(options, f.name)
        if f.metadata["kind"] is bool:
            if value:
                out.append(_flag(f.name))
            continue
        if value is None or (value == f.default and f.name not in ALWAYS_WRITTEN):
            continue
        text = str(value)
        # "--opt=-x" keeps a value that starts with "-" from reading as an option.
        out += [f"{_flag(f.name)}={text}"] if text.startswith("-") else [_flag(f.name), text]
    return out
