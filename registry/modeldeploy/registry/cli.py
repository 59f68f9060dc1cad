"""``modeldeploy registry ...``: list, show, publish, golden-set, upload-triton, fetch, seal,
promote, reject, subscribe.

Thin: each handler parses nothing itself, calls one function of this package and
prints a table. Exit codes: 0 done, 1 failed (the message says why, via CommandError),
2 usage (argparse). The registry URI comes from ``--registry-uri`` or
``$MLFLOW_TRACKING_URI``; nothing falls back to a local ./mlruns. A ``user:pass@`` in
it is moved into ``MLFLOW_TRACKING_USERNAME/PASSWORD`` and never printed.
"""

from __future__ import annotations

import argparse
import json
import os
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

from modeldeploy.registry.base import (
    DEFAULT_CANDIDATE_ALIAS,
    DEFAULT_STABLE_ALIAS,
    TAG_FAMILY,
    TAG_MAX_LENGTH,
    TAG_OUTCOME,
    TAG_REASON,
    TAG_TEST_ACCURACY,
    RegistryError,
)
from modeldeploy.registry.uris import redact_text

SECRET_ENV = "MODELDEPLOY_WEBHOOK_SECRET"


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("registry", help="publish, inspect and decide model versions")
    sub = parser.add_subparsers(dest="registry_command", metavar="ACTION", required=True)

    def add(name: str, help_text: str, handler) -> argparse.ArgumentParser:
        cmd = sub.add_parser(name, help=help_text)
        cmd.add_argument(
            "--registry-uri",
            default=os.environ.get("MLFLOW_TRACKING_URI"),
            help="MLflow server URI (default: $MLFLOW_TRACKING_URI)",
        )
        cmd.set_defaults(handler=handler)
        return cmd

    add("list", "registered models and their aliases", _list)

    show = add("show", "a model's versions, aliases and decisions", _show)
    show.add_argument("model")
    show.add_argument("version", nargs="?", help="show every tag of this version")
    show.add_argument("--limit", type=int, default=20, help="newest versions to list")

    publish = add("publish", "publish a checkpoint directory as a new version", _publish)
    publish.add_argument("directory", type=Path)
    publish.add_argument("--model", required=True, help="registered model name")
    publish.add_argument(
        "--alias", help=f"set this alias on the new version (e.g. {DEFAULT_CANDIDATE_ALIAS})"
    )
    publish.add_argument("--description", default="")
    publish.add_argument(
        "--triton-base-uri",
        default=None,
        help="also publish the version's Triton repository and upload it to"
        " <base>/<model>/<version>/triton (s3://, pvc://, or https:// as triton.tar.gz; gs://"
        " with --no-triton-upload; the operator's MODELDEPLOY_TRITON_BASE_URI)",
    )
    publish.add_argument(
        "--no-triton-upload",
        action="store_true",
        help="attach the Triton repository to the version but copy it to the base URI yourself",
    )
    publish.add_argument(
        "--golden-set",
        type=Path,
        help="JSONL of {text, label}: the version's golden set, which the prober sends to both"
        " arms while this version is stable (labels must be the model's classes; each text once)",
    )
    _storage_args(publish)

    golden_cmd = add(
        "golden-set", "attach a golden set (JSONL of {text, label}) to a published version",
        _golden_set,
    )  # fmt: skip
    golden_cmd.add_argument("model")
    golden_cmd.add_argument("version")
    golden_cmd.add_argument("file", type=Path)

    upload = add(
        "upload-triton",
        "upload a published version's Triton repository (verified) to <base>/<model>/<version>",
        _upload_triton,
    )
    upload.add_argument("model")
    upload.add_argument("version")
    upload.add_argument(
        "--triton-base-uri", required=True, help="s3://bucket/path, pvc://claim/path or https://..."
    )
    _storage_args(upload)

    fetch = add("fetch", "download and verify a version into the local cache", _fetch)
    fetch.add_argument("model")
    fetch.add_argument("ref", help="version number or alias")
    fetch.add_argument("--cache-dir", type=Path, default=_default_cache())

    seal = sub.add_parser(
        "seal",
        help="write the SHA-256 manifest into a checkpoint directory (served with --model-dir)",
    )
    seal.add_argument("directory", type=Path)
    seal.set_defaults(handler=_seal)

    for name, help_text, handler in (
        ("promote", "record a successful rollout: champion moves to VERSION", _promote),
        ("reject", "record a rollback: challenger removed, VERSION tagged rejected", _reject),
    ):
        cmd = add(name, help_text, handler)
        cmd.add_argument("model")
        cmd.add_argument("version")
        cmd.add_argument("--reason", required=True, help="short reason recorded on the version")
        cmd.add_argument("--stable-alias", default=DEFAULT_STABLE_ALIAS)
        cmd.add_argument("--candidate-alias", default=DEFAULT_CANDIDATE_ALIAS)

    subscribe = add("subscribe", "register the platform's webhook in MLflow", _subscribe)
    subscribe.add_argument("--url", required=True, help="the operator's webhook endpoint")
    subscribe.add_argument("--name", default="modeldeploy")
    subscribe.add_argument(
        "--secret-env",
        default=SECRET_ENV,
        help=f"variable holding the secret (default {SECRET_ENV})",
    )


def _storage_args(cmd: argparse.ArgumentParser) -> None:
    cmd.add_argument(
        "--pvc-mount",
        action="append",
        default=[],
        metavar="CLAIM=DIR",
        help="where a pvc:// claim is mounted on this machine (default $MODELDEPLOY_PVC_MOUNTS);"
        " s3:// reads AWS_ENDPOINT_URL, AWS_ACCESS_KEY_ID, ... as KServe does",
    )


def _store_factory(args: argparse.Namespace):
    """``open_store`` with the command's --pvc-mount options (None: $MODELDEPLOY_PVC_MOUNTS)."""
    from modeldeploy.registry.storage import open_store, pvc_mounts

    mounts = _run(lambda: pvc_mounts(",".join(args.pvc_mount))) if args.pvc_mount else None
    return lambda uri: open_store(uri, mounts=mounts)


def _default_cache() -> Path:
    root = os.environ.get("MODELDEPLOY_CACHE") or str(Path.home() / ".cache" / "modeldeploy")
    return Path(root) / "registry"


def _client(args: argparse.Namespace):
    from modeldeploy.cli import CommandError
    from modeldeploy.registry.mlflow_client import MlflowRegistry

    if not args.registry_uri:
        raise CommandError("no registry: pass --registry-uri or set MLFLOW_TRACKING_URI")
    client = MlflowRegistry(args.registry_uri)
    if not client.is_online():
        raise CommandError(f"registry unavailable: {client.uri} is not answering")
    return client


def _run(fn):
    """Call ``fn`` and turn registry errors into a clean CommandError."""
    from modeldeploy.cli import CommandError

    try:
        return fn()
    except (RegistryError, ValueError) as exc:
        raise CommandError(redact_text(str(exc))) from None


def table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """A plain aligned table (pure, so the format is tested without a server)."""
    cells = [[str(h) for h in headers]] + [
        ["-" if c in (None, "") else str(c) for c in r] for r in rows
    ]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    return "\n".join(
        "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in cells
    )


def _aliases_text(aliases: dict[str, str]) -> str:
    return ", ".join(f"{a}={v}" for a, v in sorted(aliases.items()))


def _when(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%d %H:%M") if ms else "-"


def _list(args: argparse.Namespace) -> int:
    client = _client(args)
    models = _run(client.list_models)
    if not models:
        print("no registered models")
        return 0
    print(
        table(
            ["MODEL", "ALIASES", "UPDATED"],
            [[m.name, _aliases_text(dict(m.aliases)), _when(m.updated_ms)] for m in models],
        )
    )
    return 0


def _show(args: argparse.Namespace) -> int:
    client = _client(args)
    model = _run(lambda: client.get_model(args.model))
    if args.version:
        info = _run(lambda: client.get_version(args.model, args.version))
        aliases = [a for a, v in model.aliases.items() if v == info.version]
        print(f"{info.name} version {info.version}  aliases: {', '.join(sorted(aliases)) or '-'}")
        print(f"source: {info.source}")
        print(table(["TAG", "VALUE"], sorted(info.tags.items())))
        return 0
    versions, _ = _run(lambda: client.search_versions(args.model, max_results=max(1, args.limit)))
    by_version: dict[str, list[str]] = {}
    for alias, version in model.aliases.items():
        by_version.setdefault(version, []).append(alias)
    print(f"{model.name}  aliases: {_aliases_text(dict(model.aliases)) or '-'}")
    print(
        table(
            ["VERSION", "ALIASES", "FAMILY", "MAX_LEN", "TEST_ACC", "OUTCOME", "REASON", "CREATED"],
            [
                [
                    v.version,
                    ",".join(sorted(by_version.get(v.version, []))),
                    v.tags.get(TAG_FAMILY),
                    v.tags.get(TAG_MAX_LENGTH),
                    v.tags.get(TAG_TEST_ACCURACY),
                    v.tags.get(TAG_OUTCOME),
                    (v.tags.get(TAG_REASON) or "")[:60],
                    _when(v.created_ms),
                ]
                for v in versions
            ],
        )
    )
    return 0


def _publish(args: argparse.Namespace) -> int:
    from modeldeploy.registry.golden import TAG_GOLDEN_SIZE
    from modeldeploy.registry.publish import inspect_checkpoint, publish_checkpoint
    from modeldeploy.registry.triton import TAG_TRITON_URI

    _run(lambda: inspect_checkpoint(args.directory))  # refuse before touching the network
    client = _client(args)
    info = _run(
        lambda: publish_checkpoint(
            client,
            args.directory,
            args.model,
            alias=args.alias,
            description=args.description,
            triton_base_uri=args.triton_base_uri,
            triton_store=None if args.no_triton_upload else _store_factory(args),
            golden_set=args.golden_set,
        )
    )
    alias = f" with alias {args.alias}" if args.alias else ""
    print(f"published {info.name} version {info.version}{alias}")
    if uri := info.tags.get(TAG_TRITON_URI):
        print(f"Triton repository at {uri}")
    if size := info.tags.get(TAG_GOLDEN_SIZE):
        print(f"golden set of {size} examples")
    return 0


def _golden_set(args: argparse.Namespace) -> int:
    from modeldeploy.registry.golden import publish_golden

    client = _client(args)
    ref = _run(lambda: publish_golden(client, args.model, args.version, args.file))
    print(f"{args.model} version {args.version}: golden set of {ref.size} examples at {ref.uri}")
    return 0


def _upload_triton(args: argparse.Namespace) -> int:
    from modeldeploy.registry.triton import upload_triton

    client = _client(args)
    store = _store_factory(args)
    result = _run(
        lambda: upload_triton(client, args.model, args.version, args.triton_base_uri, store)
    )
    state = "already in place" if result.unchanged else f"{len(result.written)} files uploaded"
    print(f"{args.model} version {args.version}: Triton repository at {result.uri} ({state})")
    return 0


def _fetch(args: argparse.Namespace) -> int:
    from modeldeploy.registry.fetch import fetch_version, resolve_version

    client = _client(args)
    version = _run(lambda: resolve_version(client, args.model, args.ref))
    path = _run(lambda: fetch_version(client, args.model, version, args.cache_dir))
    print(f"{args.model} version {version} verified at {path}")
    return 0


def _seal(args: argparse.Namespace) -> int:
    from modeldeploy.registry import manifest

    path = _run(lambda: manifest.seal(args.directory))
    digest = manifest.manifest_sha256(manifest.from_json(path.read_text()))
    print(f"sealed {args.directory}: {path.name} written, manifest digest {digest}")
    return 0


def _decide(args: argparse.Namespace, promote: bool) -> int:
    from modeldeploy.registry import decisions

    names = _run(lambda: decisions.AliasNames(args.stable_alias, args.candidate_alias))
    client = _client(args)
    fn = decisions.promote if promote else decisions.reject
    result = _run(lambda: fn(client, args.model, args.version, args.reason, names=names))
    if not result.changed:
        print(
            f"{args.model} version {result.version} already {result.outcome.value}; nothing changed"
        )
        return 0
    print(f"{args.model} version {result.version} {result.outcome.value}:")
    for step in result.steps:
        print(f"  {_step_text(step)}")
    return 0


def _step_text(step) -> str:
    from modeldeploy.registry.decisions import DeleteAlias, SetAlias

    if isinstance(step, SetAlias):
        return f"alias {step.alias} -> version {step.version}"
    if isinstance(step, DeleteAlias):
        return f"alias {step.alias} removed"
    return "tags " + json.dumps(dict(step.tags), sort_keys=True)


def _promote(args: argparse.Namespace) -> int:
    return _decide(args, promote=True)


def _reject(args: argparse.Namespace) -> int:
    return _decide(args, promote=False)


def _subscribe(args: argparse.Namespace) -> int:
    from modeldeploy.cli import CommandError
    from modeldeploy.registry.subscribe import subscribe

    secret = os.environ.get(args.secret_env, "")
    if not secret:
        raise CommandError(
            f"set the webhook secret in ${args.secret_env} (it is never passed on the command line)"
        )
    client = _client(args)
    hook, created = _run(lambda: subscribe(client, args.url, secret, name=args.name))
    verb = "created" if created else "updated"
    print(f"webhook {hook.name} ({hook.webhook_id}) {verb}: {hook.url}")
    print(f"events: {', '.join(hook.events)}")
    return 0
