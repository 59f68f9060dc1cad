"""Typed settings of one predictor process, and the command-line options that fill them.

``add_arguments`` only declares options; parsing happens in ``__main__`` (and in the
``modeldeploy serve`` command), never at import time.
"""

from __future__ import annotations

import argparse
import os
from dataclasses import dataclass, field
from pathlib import Path

from modeldeploy.serving.backends.base import RUNTIMES
from modeldeploy.serving.batcher import BatchingConfig
from modeldeploy.serving.codecs import TruncationPolicy

ROLES = ("stable", "canary", "shadow")


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
    http_port: int = 8080
    grpc_port: int = 8081  # 0 disables gRPC
    batching: BatchingConfig = field(default_factory=BatchingConfig)
    max_instances: int = 64
    policy: TruncationPolicy = field(default_factory=TruncationPolicy)
    runtime: str = "torch"
    threads: int = 0  # 0: all cores this process may use
    parity_tolerance: float = 0.01
    max_body_bytes: int = 1_000_000
    feedback_capacity: int = 100_000
    feedback_ttl_s: float = 3600.0
    access_log: bool = False

    def resolved_threads(self) -> int:
        return self.threads or max(1, len(os.sched_getaffinity(0)))


def add_arguments(parser: argparse.ArgumentParser) -> None:
    source = parser.add_argument_group("model source (one of)")
    source.add_argument("--model-dir", type=Path, help="a local Hugging Face checkpoint directory")
    source.add_argument("--registry-uri", help="MLflow registry URI (with --model and --version)")
    source.add_argument("--model", help="registered model name")
    source.add_argument("--version", help="version number or alias")
    source.add_argument(
        "--fetch-cache", type=Path, help="where verified registry downloads are kept"
    )
    parser.add_argument("--name", default="classifier", help="model name in the URLs")
    parser.add_argument("--deployment", default="local", help="deployment label on every metric")
    parser.add_argument("--role", choices=ROLES, default="stable")
    parser.add_argument("--model-version", help="model_version label (default: the version)")
    parser.add_argument("--http-port", type=int, default=8080)
    parser.add_argument("--grpc-port", type=int, default=8081, help="0 disables gRPC")
    parser.add_argument("--max-batch-size", type=int, default=32)
    parser.add_argument("--max-batch-delay-ms", type=float, default=5.0)
    parser.add_argument("--max-instances", type=int, default=64, help="texts per request")
    parser.add_argument("--max-length", type=int, default=None, help="tokens (default: model's)")
    parser.add_argument("--truncation", choices=("truncate", "reject"), default="truncate")
    parser.add_argument("--max-chars", type=int, default=10_000, help="characters per text")
    parser.add_argument("--max-body-bytes", type=int, default=1_000_000)
    parser.add_argument("--runtime", choices=RUNTIMES, default="torch")
    parser.add_argument("--parity-tolerance", type=float, default=0.01)
    parser.add_argument("--threads", type=int, default=0, help="0: all available cores")
    parser.add_argument("--feedback-ttl-s", type=float, default=3600.0)
    parser.add_argument("--feedback-capacity", type=int, default=100_000)
    parser.add_argument("--access-log", action="store_true")


class ConfigError(ValueError):
    """Inconsistent options; the message says which."""


def from_args(args: argparse.Namespace, default_max_length: int = 64) -> ServeConfig:
    if bool(args.model_dir) == bool(args.registry_uri):
        raise ConfigError("give exactly one of --model-dir or --registry-uri")
    if args.registry_uri and not (args.model and args.version):
        raise ConfigError("--registry-uri needs --model and --version")
    for option in ("max_batch_size", "max_instances", "max_chars", "max_body_bytes"):
        if getattr(args, option) < 1:
            raise ConfigError(f"--{option.replace('_', '-')} must be at least 1")
    return ServeConfig(
        source=ModelSource(
            model_dir=args.model_dir,
            registry_uri=args.registry_uri,
            model=args.model,
            version=args.version,
            fetch_cache=args.fetch_cache,
        ),
        name=args.name,
        deployment=args.deployment,
        role=args.role,
        model_version=args.model_version,
        http_port=args.http_port,
        grpc_port=args.grpc_port,
        batching=BatchingConfig(
            max_batch_size=args.max_batch_size, max_delay_s=args.max_batch_delay_ms / 1000.0
        ),
        max_instances=args.max_instances,
        policy=TruncationPolicy(
            max_length=args.max_length or 0, mode=args.truncation, max_chars=args.max_chars
        ),
        runtime=args.runtime,
        threads=args.threads,
        parity_tolerance=args.parity_tolerance,
        max_body_bytes=args.max_body_bytes,
        feedback_capacity=args.feedback_capacity,
        feedback_ttl_s=args.feedback_ttl_s,
        access_log=args.access_log,
    )
