"""The start-up cache: derived files trusted exactly as far as a fresh build would be.

A predictor restart skips three slow steps by reusing what an earlier start derived from
the same checkpoint: the TorchScript trace, the exported (and quantized, and ONNX Runtime
optimised) graph, and the parity verdict. Each is kept under
``$MODELDEPLOY_CACHE/compiled/<weights digest>/`` with a record beside it
(``<file>.record.json``) that holds

- ``key``: everything the file was derived from (its kind, the weights digest or the
  source graph's SHA-256, the precision, the library versions, the CPU features that can
  change the numerics), exactly as the start that would rebuild it computes it;
- ``sha256`` and ``size`` of the file as it was written.

A file is used only when its record's key equals this start's key and the file still
hashes to the recorded digest (about 0.1 s of CPU for a 90 MB graph, which the kernel
does outside the GIL). Anything else, a missing or unreadable record, another key, a
truncated or altered file, is logged with its reason and rebuilt: a different artifact
never reuses another's derived files, and a corrupt cache is never loaded.

Parity verdicts are small JSON documents that carry their key and a SHA-256 over key
and report (:func:`write_verdict`, :func:`read_verdict`), so a verdict is reused only for
the same candidate file, reference, validation data, tolerance and hardware.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.metadata
import importlib.util
import json
import logging
import os
import sys
import tempfile
import threading
from collections.abc import Mapping, Sequence
from concurrent.futures import Future
from pathlib import Path
from typing import Any

from modeldeploy.serving.backends.hardware import cpu_flags

log = logging.getLogger(__name__)

FORMAT = 1
"""Bumped when what a key means changes; every older entry then reads as another key."""
RECORD_SUFFIX = ".record.json"
NUMERIC_CPU_FLAGS = frozenset(
    {"avx2", "avx512f", "avx512_bf16", "avx512_fp16", "avx512_vnni", "amx_bf16", "amx_int8"}
)
"""CPU features that select different kernels (so possibly different rounding)."""

Key = Mapping[str, Any]


def hardware_key() -> list[str]:
    """The CPU features of this machine that can change a runtime's numerics."""
    return sorted(NUMERIC_CPU_FLAGS & cpu_flags())


def library_version(name: str) -> str | None:
    """The installed version of ``name`` without importing it (None if not installed).

    An imported module answers for itself; otherwise the ``.dist-info`` beside the package
    does (a full ``importlib.metadata`` scan of every path entry costs 0.05-0.15 s).
    """
    module = sys.modules.get(name)
    version = getattr(module, "__version__", None)
    if isinstance(version, str):
        return version
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        return None
    site = Path(next(iter(spec.submodule_search_locations))).parent
    for info in sorted(site.glob(f"{name}-*.dist-info")):
        found = importlib.metadata.Distribution.at(info).version
        if found:
            return str(found)
    return importlib.metadata.version(name)


def _identity(path: Path) -> tuple[str, int, int, int, int]:
    st = path.stat()
    return (str(path.resolve()), st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino)


_digests: dict[tuple[str, int, int, int, int], Future[str]] = {}
_digests_lock = threading.Lock()


def _hash(path: Path) -> str:
    with open(path, "rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def file_sha256(path: Path) -> str:
    """SHA-256 of ``path``, computed once per file identity in this process.

    Hashing runs outside the GIL, so :func:`prefetch_digests` can compute a digest on the
    other core while the main thread imports; a file rewritten since then has another
    identity (size, mtime, ctime, inode) and is hashed again.
    """
    identity = _identity(path)
    with _digests_lock:
        future = _digests.get(identity)
        mine = future is None
        if future is None:
            future = _digests[identity] = Future()
    if not mine:
        return future.result()
    try:
        future.set_result(_hash(path))
    except BaseException as exc:
        with _digests_lock:
            _digests.pop(identity, None)
        future.set_exception(exc)
        raise
    return future.result()


def prefetch_digests(paths: Sequence[Path]) -> None:
    """Start hashing the existing ``paths`` in daemon threads (errors surface on real use)."""
    for path in paths:
        if path.is_file():
            thread = threading.Thread(
                target=_prefetch, args=(path,), name="prefetch-digest", daemon=True
            )
            thread.start()


def _prefetch(path: Path) -> None:
    with contextlib.suppress(OSError):  # the real check reads the file again and says why
        file_sha256(path)


def record_path(path: Path) -> Path:
    return path.with_name(path.name + RECORD_SUFFIX)


def _canonical(value: Any) -> Any:
    """``value`` as JSON would give it back (tuples as lists), for comparisons."""
    return json.loads(json.dumps(value, sort_keys=True))


def _difference(recorded: Any, wanted: Mapping[str, Any]) -> str:
    if not isinstance(recorded, dict):
        return "no key"
    for name in sorted(set(recorded) | set(wanted)):
        if recorded.get(name) != wanted.get(name):
            return f"{name} {recorded.get(name)!r}, now {wanted.get(name)!r}"
    return "the same key"  # not reached: callers compare first


def why_unusable(path: Path, key: Key) -> str | None:
    """None when ``path`` may be loaded for ``key``; else why it must be rebuilt."""
    if not path.is_file():
        return "not built yet"
    try:
        record = json.loads(record_path(path).read_text())
    except FileNotFoundError:
        return "no record beside it (unverifiable)"
    except (OSError, ValueError) as exc:
        return f"unreadable record ({exc})"
    if not isinstance(record, dict):
        return "unreadable record (not an object)"
    wanted = _canonical({"format": FORMAT, **key})
    if record.get("key") != wanted:
        return f"built for another key ({_difference(record.get('key'), wanted)})"
    try:
        size = path.stat().st_size
        digest = file_sha256(path) if size == record.get("size") else None
    except OSError as exc:
        return f"unreadable ({exc})"
    if digest is None or digest != record.get("sha256"):
        return "corrupt (its content no longer matches its record)"
    return None


def usable(path: Path, key: Key, what: str) -> bool:
    """:func:`why_unusable`, logging the reason a cached ``what`` is rebuilt."""
    reason = why_unusable(path, key)
    if reason is None:
        return True
    if path.exists():
        log.warning("cached %s %s is not reused: %s; rebuilding it", what, path, reason)
    return False


def recorded_sha256(path: Path) -> str:
    """The digest in ``path``'s record (call after :func:`usable` said yes, or :func:`commit`)."""
    return str(json.loads(record_path(path).read_text())["sha256"])


def _atomic_write(target: Path, text: str) -> None:
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.")
    try:
        with os.fdopen(fd, "w") as handle:
            handle.write(text)
        os.chmod(tmp, 0o644)  # as readable as the files it describes (mkstemp makes 0600)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def commit(built: Path, target: Path, key: Key) -> Path:
    """Move the freshly built ``built`` to ``target`` (atomically) and record it under ``key``.

    The record is written first: a crash between the two leaves a record whose digest
    does not match the older file, which then reads as corrupt and is rebuilt.
    """
    record = {
        "key": _canonical({"format": FORMAT, **key}),
        "sha256": file_sha256(built),
        "size": built.stat().st_size,
    }
    target.parent.mkdir(parents=True, exist_ok=True)
    _atomic_write(record_path(target), json.dumps(record, indent=1, sort_keys=True))
    os.replace(built, target)
    return target


def _seal(key: Any, report: Any) -> str:
    body = json.dumps({"key": key, "report": report}, sort_keys=True)
    return hashlib.sha256(body.encode()).hexdigest()


def write_verdict(path: Path, key: Key, report: Mapping[str, Any]) -> None:
    """Save a parity ``report`` for ``key``, sealed so an altered file is not believed."""
    wanted = _canonical({"format": FORMAT, **key})
    body = _canonical(dict(report))
    document = {"key": wanted, "report": body, "sha256": _seal(wanted, body)}
    path.parent.mkdir(parents=True, exist_ok=True)
    _atomic_write(path, json.dumps(document, indent=1, sort_keys=True))


def read_verdict(path: Path, key: Key) -> dict[str, Any] | None:
    """The report saved for exactly ``key``; None (with the reason logged) otherwise."""
    if not path.is_file():
        return None
    wanted = _canonical({"format": FORMAT, **key})
    try:
        document = json.loads(path.read_text())
        recorded, report = document["key"], document["report"]
        intact = document["sha256"] == _seal(recorded, report)
    except (OSError, ValueError, KeyError, TypeError) as exc:
        log.warning("cached parity verdict %s is unreadable (%s); checking again", path, exc)
        return None
    if not intact:
        log.warning("cached parity verdict %s is corrupt; checking again", path)
        return None
    if recorded != wanted:
        log.info(
            "cached parity verdict %s is for another key (%s); checking again",
            path,
            _difference(recorded, wanted),
        )
        return None
    return dict(report)
