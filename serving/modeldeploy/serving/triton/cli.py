"""``modeldeploy triton export``: write a checkpoint into a Triton model repository."""

from __future__ import annotations

import argparse
from pathlib import Path

from modeldeploy.serving.triton.backend_model import PRECISIONS
from modeldeploy.serving.triton.config import TARGETS, Batching


def register(subparsers: argparse._SubParsersAction) -> None:
    triton = subparsers.add_parser("triton", help="Triton model repositories")
    commands = triton.add_subparsers(dest="triton_command", metavar="COMMAND")
    export = commands.add_parser("export", help="export a checkpoint as one model version")
    export.add_argument("checkpoint", type=Path, help="Hugging Face checkpoint directory")
    export.add_argument("repository", type=Path, help="Triton model repository (created)")
    export.add_argument("--name", required=True, help="Triton model name")
    export.add_argument("--version", type=int, required=True, help="Triton version (1, 2, ...)")
    export.add_argument(
        "--registry-version",
        default="",
        help="the registry version this is, when --version differs (publishing: --version 1, so"
        " answers name no arm); labels the metrics",
    )
    export.add_argument("--target", choices=TARGETS, default="python")
    export.add_argument("--runtime", choices=("onnx", "torch"), default="onnx")
    export.add_argument(
        "--precision",
        choices=PRECISIONS,
        default="fp32",
        help="bf16: the torch runtime under torch.autocast (CPUs with bf16 units)",
    )
    export.add_argument("--max-batch-size", type=int, default=64)
    export.add_argument("--max-queue-delay-us", type=int, default=2000)
    export.add_argument("--instances", type=int, default=1)
    export.add_argument("--tensorrt", action="store_true", help="native target: TensorRT EP")
    export.add_argument("--replace", action="store_true", help="overwrite an existing version")
    export.set_defaults(handler=_export)


def _export(args: argparse.Namespace) -> int:
    from modeldeploy.cli import CommandError
    from modeldeploy.serving.triton.export import ExportError, export_repository

    try:
        result = export_repository(
            args.checkpoint,
            args.repository,
            args.name,
            args.version,
            target=args.target,
            runtime=args.runtime,
            batching=Batching(args.max_batch_size, args.max_queue_delay_us, (), args.instances),
            tensorrt=args.tensorrt,
            replace=args.replace,
            registry_version=args.registry_version,
            precision=args.precision,
        )
    except (ExportError, ValueError) as exc:
        raise CommandError(str(exc)) from exc
    for model_dir in result.model_dirs:
        print(model_dir)
    return 0
