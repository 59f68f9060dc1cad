"""Typed settings of one predictor process, built from its command-line options.

The options themselves (names, defaults, types) are the contract's
(:mod:`modeldeploy.serving.contract.args`), which the operator uses to write them.
``add_arguments`` only declares them; parsing happens in ``__main__`` (and in the
``modeldeploy serve`` command), never at import time.
"""

from __future__ import annotations

import argparse
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import cast

from modeldeploy.serving.batcher import BatchingConfig
from modeldeploy.serving.codecs import TruncationMode, TruncationPolicy
from modeldeploy.serving.contract import args as contract_args
from modeldeploy.serving.contract import names as contract_names
from modeldeploy.serving.contract.latency import DEFAULT_LATENCY_WARMUP_REQUESTS

ROLES = contract_names.ROLES


@dataclass(frozen=True)
class ModelSource:
    """A local directory, or a registry version fetched (hash-verified) into a cache."""

    model_dir: Path | None = None
    registry_uri: str | None = None
    model: str | None = None
    version: str | None = None
    fetch_cache: Path | None = None


@dataclass(frozen=True)
class ServeConfig:
    source: ModelSource
    name: str = "classifier"
    deployment: str = "local"
    role: str = "stable"
    model_version: str | None = None  # defaults to the registry version, else "local"
    host: str = contract_args.DEFAULT_HOST
    http_port: int = 8080
    grpc_port: int = 8081  # 0 disables gRPC
    batching: BatchingConfig = field(default_factory=BatchingConfig)
    max_instances: int = 64
    policy: TruncationPolicy = field(default_factory=TruncationPolicy)
    runtime: str = "torch"
    precision: str = "auto"
    pack_row_tokens: int = contract_args.DEFAULT_PACK_ROW_TOKENS  # packing.py; 0 pads
    threads: int = 0  # 0: all cores this process may use
    parity_tolerance: float = 0.01
    max_body_bytes: int = 1_000_000
    feedback_capacity: int = 100_000
    feedback_ttl_s: float = 3600.0
    latency_warmup_requests: int = DEFAULT_LATENCY_WARMUP_REQUESTS
    access_log: bool = False
    label_token_file: Path | None = None  # both token files, or neither: labels are open
    control_token_file: Path | None = None
    labels_at_joiner: bool = False  # KServe with a joiner: no feedback route here
    response_detail: str = contract_args.DEFAULT_RESPONSE_DETAIL  # label | full (codecs)

    def resolved_threads(self) -> int:
        return self.threads or max(1, len(os.sched_getaffinity(0)))


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Declare the predictor's options (the contract's, so the operator writes the same)."""
    contract_args.add_arguments(parser)


class ConfigError(ValueError):
    """Inconsistent options; the message says which."""


def from_args(args: argparse.Namespace, default_max_length: int = 64) -> ServeConfig:
    """Check the parsed options together and build the settings; raises :class:`ConfigError`."""
    o = contract_args.options_from(args)
    if bool(o.model_dir) == bool(o.registry_uri):
        raise ConfigError("give exactly one of --model-dir or --registry-uri")
    if o.registry_uri and not (o.model and o.version):
        raise ConfigError("--registry-uri needs --model and --version")
    for option in (
        "max_batch_size",
        "max_instances",
        "max_chars",
        "max_body_bytes",
        "feedback_capacity",
    ):
        if getattr(o, option) < 1:
            raise ConfigError(f"--{option.replace('_', '-')} must be at least 1")
    for option in (
        "threads",
        "latency_warmup_requests",
        "http_port",
        "grpc_port",
        "pack_row_tokens",
    ):
        if getattr(o, option) < 0:
            raise ConfigError(f"--{option.replace('_', '-')} must not be negative")
    if bool(o.label_token_file) != bool(o.control_token_file):
        raise ConfigError("give both --label-token-file and --control-token-file, or neither")
    if not o.feedback_ttl_s > 0:
        raise ConfigError("--feedback-ttl-s must be positive")
    return ServeConfig(
        source=ModelSource(
            model_dir=o.model_dir,
            registry_uri=o.registry_uri,
            model=o.model,
            version=o.version,
            fetch_cache=o.fetch_cache,
        ),
        name=o.name,
        deployment=o.deployment,
        role=o.role,
        model_version=o.model_version,
        host=o.host,
        http_port=o.http_port,
        grpc_port=o.grpc_port,
        batching=BatchingConfig(
            max_batch_size=o.max_batch_size, max_delay_s=o.max_batch_delay_ms / 1000.0
        ),
        max_instances=o.max_instances,
        policy=TruncationPolicy(
            max_length=o.max_length or 0,
            mode=cast(TruncationMode, o.truncation),
            max_chars=o.max_chars,
        ),
        runtime=o.runtime,
        precision=o.precision,
        pack_row_tokens=o.pack_row_tokens,
        threads=o.threads,
        parity_tolerance=o.parity_tolerance,
        max_body_bytes=o.max_body_bytes,
        feedback_capacity=o.feedback_capacity,
        feedback_ttl_s=o.feedback_ttl_s,
        latency_warmup_requests=o.latency_warmup_requests,
        access_log=o.access_log,
        label_token_file=o.label_token_file,
        control_token_file=o.control_token_file,
        labels_at_joiner=o.labels_at_joiner,
        response_detail=o.response_detail,
    )
