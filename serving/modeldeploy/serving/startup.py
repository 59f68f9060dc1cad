"""Overlap the runtime's native library loading with the predictor's Python imports.

Most of a cold start is single-threaded Python (kserve, fastapi, torch's Python layer),
which holds the GIL, so threads cannot run those imports side by side. The one big piece
that does not need the GIL is the dynamic loader: mapping, relocating and running the
static initialisers of ``libtorch_cpu.so`` (430 MB) or ONNX Runtime's extension. ``ctypes``
releases the GIL around ``dlopen``, so :func:`preload_native` does that on the second core
while the main thread imports kserve; the later ``import torch`` (or ``onnxruntime``) finds
the libraries already loaded and only runs its Python part.

This is only a hint: the libraries are loaded exactly as the import would load them (by
path, from the installed package), a failure is ignored (the real import reports it), and
a wrong guess costs CPU time, never correctness. No Python module is imported in the
background thread, so the import system's locks are never contended.
"""

from __future__ import annotations

import argparse
import ctypes
import importlib.util
import threading
from collections.abc import Sequence
from pathlib import Path

NATIVE_LIBRARIES = {
    # Dependencies first: dlopen resolves a library's own dependencies by soname.
    "torch": ("lib/libc10.so", "lib/libtorch_cpu.so"),
    "onnxruntime": ("capi/onnxruntime_pybind11_state*.so",),
}
"""Per package, the shared objects (globs, relative to the package) worth preloading."""


def packages_for(runtime: str) -> tuple[str, ...]:
    """The native packages a predictor of ``runtime`` imports on a start with warm caches."""
    return ("torch",) if runtime == "torch" else ("onnxruntime",)


def runtime_from_argv(argv: Sequence[str]) -> str:
    """The ``--runtime`` in ``argv`` (``torch``, the default, if absent or unreadable).

    A peek, not the parse: the real parser (which needs kserve-importing modules) runs
    later and reports bad options; a wrong guess here only preloads the wrong library.
    """
    peek = argparse.ArgumentParser(add_help=False)
    peek.add_argument("--runtime", default="torch")
    try:
        known, _ = peek.parse_known_args(list(argv))
    except SystemExit:  # argparse exits on an ambiguous abbreviation
        return "torch"
    return str(known.runtime)


def library_paths(package: str) -> list[Path]:
    """The installed shared objects of ``package`` to preload (empty if not installed)."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        return []
    root = Path(next(iter(spec.submodule_search_locations)))
    found: list[Path] = []
    for pattern in NATIVE_LIBRARIES.get(package, ()):
        found.extend(sorted(root.glob(pattern)))
    return found


def _load(paths: Sequence[Path]) -> None:
    for path in paths:
        try:
            ctypes.CDLL(str(path))
        except OSError:
            return  # the real import will say what is wrong


def preload_native(runtime: str) -> threading.Thread | None:
    """Start loading ``runtime``'s native libraries in a daemon thread; None if none to load."""
    paths = [p for package in packages_for(runtime) for p in library_paths(package)]
    if not paths:
        return None
    thread = threading.Thread(target=_load, args=(paths,), name="preload-native", daemon=True)
    thread.start()
    return thread
