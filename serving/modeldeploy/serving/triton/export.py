"""Export a checkpoint directory to a versioned Triton model repository.

Layout written (``target="python"``)::

    <repo>/<name>/config.pbtxt          # shared by all versions; I/O and batching only
    <repo>/<name>/<version>/model.py    # backend_model.py, verbatim
    <repo>/<name>/<version>/model.onnx  # runtime "onnx" (or model.safetensors for "torch")
    <repo>/<name>/<version>/{tokenizer.json,tokenizer_config.json,config.json,labels.json,metrics.json}
    <repo>/<name>/<version>/modeldeploy-version.json  # with registry_version= (publishing)
    <repo>/<name>/modeldeploy-manifest-<version>.json   # SHA-256 of every file above

Tokenizer, weights and label names are copied into the same version directory, so a
version is one self-contained unit; nothing is read from the source afterwards. The
source is a directory as the registry's hash-verified fetch returns it, or any local
Hugging Face directory with labels.json.

The manifest (``modeldeploy.registry.manifest`` format, paths relative to the repository)
lists the configs and version directories of every model the export wrote; ``model.py``
checks it before loading and refuses a version whose files differ, or that sits under a
version number it was not exported as.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path

from modeldeploy.registry import manifest as manifests
from modeldeploy.serving.triton import backend_model
from modeldeploy.serving.triton.config import (
    DEFAULT_BATCHING,
    TARGETS,
    Batching,
    native_onnxruntime_configs,
    python_model_config,
)
from modeldeploy.serving.triton.onnx_export import export_onnx, tokenizer_input_names

# Files a version directory carries besides the weights (missing optional ones are skipped).
UNIT_FILES = ("tokenizer.json", "tokenizer_config.json", "config.json", "labels.json")
OPTIONAL_FILES = ("metrics.json", "special_tokens_map.json")


class ExportError(Exception):
    """The export cannot be done as asked (bad source, or a conflicting existing model)."""


@dataclass(frozen=True)
class ExportResult:
    """What was written: the model directories (one, or four for the native ensemble)."""

    repository: Path
    name: str
    version: int
    model_dirs: tuple[Path, ...]
    input_names: tuple[str, ...]
    manifest: Path  # <repo>/<name>/modeldeploy-manifest-<version>.json


def export_repository(
    checkpoint: Path,
    repository: Path,
    name: str,
    version: int,
    *,
    target: str = "python",
    runtime: str = "onnx",
    batching: Batching = DEFAULT_BATCHING,
    threads: int = 0,
    tensorrt: bool = False,
    replace: bool = False,
    registry_version: str = "",
    precision: str = "fp32",
) -> ExportResult:
    """Write ``checkpoint`` as version ``version`` of model ``name`` under ``repository``.

    A model's ``config.pbtxt`` is shared by its versions, so adding a version whose config
    would differ (other label count, batching, runtime) raises :class:`ExportError` rather
    than silently changing how the versions already there are served. An existing version
    directory is only overwritten with ``replace=True``.

    ``registry_version``: the registry version this unit is, when it differs from the Triton
    version (publishing exports every registry version as Triton version 1, so that an
    answer's ``model_version`` tells no arm apart). It is written into each Python unit as
    ``backend_model.VERSION_FILE``, which the manifest lists (bound by its digest) and the
    backend labels its metrics with.

    ``precision``: ``bf16`` runs the torch runtime under ``torch.autocast`` (CPUs with bf16
    units; the same precision the predictor's ``--precision auto`` serves there), so the
    two servers can be compared at equal precision; ``fp32`` otherwise.
    """
    checkpoint = Path(checkpoint)
    if precision not in backend_model.PRECISIONS:
        raise ExportError(f"unknown precision {precision!r}: use one of {backend_model.PRECISIONS}")
    if precision != "fp32" and (target != "python" or runtime != "torch"):
        raise ExportError(
            f"precision {precision!r} needs target 'python' with runtime 'torch' "
            "(the onnx graph and the native ensemble compute in fp32)"
        )
    if target not in TARGETS:
        raise ExportError(f"unknown target {target!r}: use one of {', '.join(TARGETS)}")
    if version < 1:
        raise ExportError("Triton versions are positive integers")
    if registry_version and (not registry_version.isdigit() or int(registry_version) < 1):
        raise ExportError(f"registry version {registry_version!r}: use a positive integer")
    check_checkpoint(checkpoint)
    repository = Path(repository)
    if target == "onnxruntime":
        _refuse_second_ensemble_version(repository, name, version)
    labels = backend_model.read_labels(checkpoint)
    if target == "python":
        configs = {
            name: python_model_config(
                name, len(labels), batching, runtime=runtime, threads=threads, precision=precision
            )
        }
        input_names = tokenizer_input_names(checkpoint)
    else:
        input_names = tokenizer_input_names(checkpoint)
        configs = native_onnxruntime_configs(
            name, len(labels), input_names, batching, version=version, tensorrt=tensorrt
        )
    _check_conflicts(repository, configs, version, replace)

    model_dirs = []
    for model_name, text in configs.items():
        model_dir = repository / model_name
        version_dir = model_dir / str(version)
        if version_dir.exists():
            shutil.rmtree(version_dir)
        version_dir.mkdir(parents=True)
        (model_dir / "config.pbtxt").write_text(text)
        model_dirs.append(model_dir)

    if target == "python":
        unit = repository / name / str(version)
        _copy_unit(checkpoint, unit)
        shutil.copyfile(backend_model.__file__, unit / "model.py")
        if runtime == "onnx":
            export_onnx(checkpoint, unit / "model.onnx")
        else:
            shutil.copyfile(checkpoint / "model.safetensors", unit / "model.safetensors")
    else:
        for stage in ("tokenize", "postprocess"):
            unit = repository / f"{name}_{stage}" / str(version)
            _copy_unit(checkpoint, unit)
            shutil.copyfile(backend_model.__file__, unit / "model.py")
        export_onnx(checkpoint, repository / f"{name}_onnx" / str(version) / "model.onnx")
        # The ensemble's own version directory stays empty, as Triton requires.
    if registry_version:
        for model_name in configs:
            unit = repository / model_name / str(version)
            if (unit / "model.py").is_file():  # the Python stages; the network needs none
                (unit / backend_model.VERSION_FILE).write_text(
                    json.dumps({"registry_version": str(int(registry_version))}) + "\n"
                )
    manifest = write_manifest(repository, name, version, list(configs))
    return ExportResult(repository, name, version, tuple(model_dirs), tuple(input_names), manifest)


def check_checkpoint(checkpoint: Path) -> None:
    """Raise :class:`ExportError` unless ``checkpoint`` has what a version unit needs."""
    missing = [f for f in UNIT_FILES if not (checkpoint / f).is_file()]
    if missing:
        raise ExportError(f"{checkpoint} is not a checkpoint directory: missing {missing}")


def write_manifest(repository: Path, name: str, version: int, models: list[str]) -> Path:
    """Hash each model's config.pbtxt and ``<version>/`` files into the version's manifest."""
    files: dict[str, manifests.FileDigest] = {}
    for model in models:
        unit = sorted(p for p in (repository / model / str(version)).rglob("*") if p.is_file())
        for path in [repository / model / "config.pbtxt", *unit]:
            rel = path.relative_to(repository).as_posix()
            files[rel] = manifests.FileDigest(path.stat().st_size, manifests.sha256_file(path))
    target = repository / name / backend_model.manifest_name(version)
    target.write_text(manifests.to_json(files))
    return target


def _refuse_second_ensemble_version(repository: Path, name: str, version: int) -> None:
    """An ensemble serves one version (config.py); a second one under its name is refused.

    Before pinning, a second export here was accepted and the ensemble's version 1 ran
    the latest parts: version 2's weights answered under version 1's number.
    """
    ensemble = repository / name
    others = (
        sorted(p.name for p in ensemble.iterdir() if p.is_dir() and p.name.isdigit())
        if ensemble.is_dir()
        else []
    )
    others = [v for v in others if v != str(version)]
    if others:
        raise ExportError(
            f"{ensemble} already serves version {', '.join(others)}; exporting version "
            f"{version} under the same ensemble name would serve one version's weights under "
            "the other's number. Export it under another name or into its own repository "
            "(one repository per InferenceService)"
        )


def _check_conflicts(
    repository: Path, configs: dict[str, str], version: int, replace: bool
) -> None:
    for model_name, text in configs.items():
        existing = repository / model_name / "config.pbtxt"
        if existing.is_file() and existing.read_text() != text:
            raise ExportError(
                f"{existing} already exists with a different config; versions of one model "
                "share it, so export under another name or remove the model first"
            )
        if (repository / model_name / str(version)).exists() and not replace:
            raise ExportError(
                f"{repository / model_name / str(version)} exists; pass replace=True to overwrite"
            )


def _copy_unit(checkpoint: Path, unit: Path) -> None:
    unit.mkdir(parents=True, exist_ok=True)
    for filename in UNIT_FILES + OPTIONAL_FILES:
        if (checkpoint / filename).is_file():
            shutil.copyfile(checkpoint / filename, unit / filename)
