"""SHA-256 manifests of checkpoint files: what was published is exactly what gets served.

A manifest maps every file of a checkpoint (weights, tokenizer, config, label map) to its
size and SHA-256. It is written as a version tag at publish time and checked file by
file after every download, so a tampered, truncated or swapped file is refused before
serving ever sees it, and the error names the file. Pure apart from reading files.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from modeldeploy.registry.base import IntegrityError

MANIFEST_VERSION = 1
_CHUNK = 1 << 20
# A checkpoint directory served with ``--model-dir`` carries its own manifest in this file
# (``seal``); it is never part of the manifest, so sealing does not change the digest.
SEAL_FILE = ".modeldeploy-seal.json"


@dataclass(frozen=True)
class FileDigest:
    size: int
    sha256: str


Manifest = Mapping[str, FileDigest]  # relative POSIX path -> digest


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def list_files(root: Path) -> list[str]:
    """Every regular file under ``root`` as sorted relative POSIX paths (not the seal)."""
    return sorted(
        p.relative_to(root).as_posix()
        for p in root.rglob("*")
        if p.is_file() and p.relative_to(root).as_posix() != SEAL_FILE
    )


def build_manifest(root: Path) -> dict[str, FileDigest]:
    """Hash every file under ``root`` (the whole checkpoint travels as one unit)."""
    return {
        rel: FileDigest(size=(root / rel).stat().st_size, sha256=sha256_file(root / rel))
        for rel in list_files(root)
    }


def to_json(manifest: Manifest) -> str:
    """Compact, key-sorted JSON so the same files always give the same text (and hash)."""
    files = {rel: {"size": d.size, "sha256": d.sha256} for rel, d in sorted(manifest.items())}
    return json.dumps(
        {"version": MANIFEST_VERSION, "files": files}, sort_keys=True, separators=(",", ":")
    )


def from_json(text: str) -> dict[str, FileDigest]:
    """Parse a manifest tag; a malformed one is an integrity problem, not a crash."""
    try:
        data = json.loads(text)
        if data.get("version") != MANIFEST_VERSION:
            raise ValueError(f"unsupported manifest version {data.get('version')!r}")
        return {
            str(rel): FileDigest(size=int(entry["size"]), sha256=str(entry["sha256"]))
            for rel, entry in data["files"].items()
        }
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise IntegrityError("manifest", f"cannot read the manifest tag ({exc})") from None


def manifest_sha256(manifest: Manifest) -> str:
    """One hash for the whole checkpoint: handy to compare two versions at a glance."""
    return hashlib.sha256(to_json(manifest).encode()).hexdigest()


def verify(root: Path, manifest: Manifest) -> None:
    """Raise :class:`IntegrityError` naming the first file that does not match.

    Checks, in order: every listed file exists with the listed size and hash, and no
    file is present that the manifest does not list (a smuggled ``pytorch_model.bin``
    would otherwise be loaded by some tools).
    """
    if not manifest:
        raise IntegrityError("manifest", "the manifest lists no files")
    for rel, expected in sorted(manifest.items()):
        path = root / rel
        if not path.is_file():
            raise IntegrityError(rel, "missing from the download (incomplete)")
        size = path.stat().st_size
        if size != expected.size:
            raise IntegrityError(
                rel, f"size {size} bytes, manifest says {expected.size} (truncated or altered)"
            )
        actual = sha256_file(path)
        if actual != expected.sha256:
            raise IntegrityError(
                rel, f"sha256 {actual[:12]}… does not match the manifest {expected.sha256[:12]}…"
            )
    extra = sorted(set(list_files(root)) - set(manifest))
    if extra:
        raise IntegrityError(extra[0], "not in the manifest (unexpected file)")


def seal(root: Path) -> Path:
    """Write ``root``'s manifest into ``root/SEAL_FILE`` (atomically) and return that path.

    A sealed directory can be served with ``--model-dir``: the predictor verifies every
    file against the seal before it loads anything, as fetch does for a registry version.
    """
    if not root.is_dir():
        raise IntegrityError(str(root), "is not a directory")
    target = root / SEAL_FILE
    staging = root / f"{SEAL_FILE}.tmp"
    staging.write_text(to_json(build_manifest(root)))
    staging.replace(target)
    return target


def read_seal(root: Path) -> dict[str, FileDigest] | None:
    """The manifest sealed into ``root``, or None when it carries none."""
    path = root / SEAL_FILE
    if not path.is_file():
        return None
    return from_json(path.read_text())
