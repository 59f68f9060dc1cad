"""Predictor start-up: less to import, native loading overlapped, threads that yield.

These happen first in ``python -m modeldeploy.serving``, and in ``modeldeploy serve`` (the
images' entrypoint, which hands its arguments to the same entry point), before anything
imports kserve or torch:

- :func:`with_one_arena` starts the process again, same process id, with
  ``MALLOC_ARENA_MAX=1`` where the environment does not set it: glibc reads it only at
  start (:data:`ONE_ARENA` says why);
- :func:`pause_gc` turns the cyclic garbage collector off until the model is built
  (:func:`resume_gc`, called by ``server.run``): the imports create some 400k objects and
  trigger about 600 collections that find almost nothing (7k unreachable objects, no
  change in RSS) and cost 14-15% of the imports' CPU (0.27-0.33 s measured). Resuming
  freezes what start-up built (``gc.freeze``), so later collections never walk the
  modules, the model and the app again (a full collection of them took 0.22 s). A start
  that runs past :data:`PAUSE_CPU_LIMIT_S` of CPU is building caches: the collector
  comes back on then, and the garbage of the build is collected, not frozen;
- :func:`prepare_environment` sets defaults the native libraries read once, when they load
  (each only if unset, so an operator's setting wins): ``TORCH_DEVICE_BACKEND_AUTOLOAD=0``
  ``GOMP_SPINCOUNT=20000`` (not set when the deployment sets ``OMP_WAIT_POLICY``:
  ``PASSIVE`` helps where the predictor shares its cores, docs/serving.md, and costs a
  third of the throughput where it has them to itself) and ``THP_MEM_ALLOC_ENABLE=1``
  (huge pages for torch's large blocks); :data:`ENVIRONMENT` says why;
- :func:`allocator.keep_freed_memory` keeps the memory a forward pass frees for the next
  one (no page faults per pass: :mod:`allocator`);
- :func:`lean_kserve` lets the predictor import the kserve submodules it uses without
  kserve's package ``__init__``, which also imports the Kubernetes client and several
  hundred generated API models (about 0.35 s of CPU at every start);
- :func:`preload_native` (below).

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
import gc
import importlib.util
import os
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

ENVIRONMENT = {
    # torch scans every installed distribution's entry points at import for out-of-tree
    # device backends (about 0.05 s); a predictor runs on the CPU or CUDA only.
    "TORCH_DEVICE_BACKEND_AUTOLOAD": "0",
    # libgomp's threads (torch's OpenMP team) spin 300,000 times (about 3 ms) after a
    # parallel region before they sleep. Between passes that kept a core spinning while
    # the event loop answered the pass's requests and read the next ones; within a pass,
    # where a serial stretch (the packing, a small op) can outlast a short spin, a
    # sleeping thread must be woken for the next region. Measured on AMX (bf16,
    # concurrency 16, the inference thread's passes and the gaps between them timed,
    # alternating runs): the gap was 3.1-3.2 ms at 300,000 and 2.8-2.9 ms at 60,000 or
    # 10,000; passes at 60,000 were shorter than at 10,000 in 4 of 5 pairs and like those
    # at 300,000. Against the default, 10,000 served 615 and 648 req/s against 557 and
    # 598 (4,000 requests, two pairs). Once answers left as soon as they were complete
    # (http_protocol.py), 20,000 (about 0.2 ms) did best: cycles (pass + mean gap) of
    # 23.0-24.0 ms against 23.4-24.6 at 60,000 and 23.8-24.6 at 10,000, 645-672 req/s
    # against 600-654 at 60,000 (6,000 requests, five rounds; 20,000 ahead of 60,000 in
    # all five by throughput). In process, with passes back to back and nothing else to
    # run, a shorter spin costs (3-6% at 10,000), so the benchmark's ceiling keeps the
    # default.
    "GOMP_SPINCOUNT": "20000",
    # torch's CPU allocator asks for transparent huge pages (2 MiB-aligned, madvise
    # MADV_HUGEPAGE) for every block of 2 MiB or more: the weights and the larger
    # activations. Where the kernel leaves huge pages to madvise (Debian's default, and
    # these machines'), nothing else gets them, and streaming 44 MB of bf16 weights through
    # 4 KiB pages takes some 11,000 page walks a pass, nested ones in a VM. Measured on AMX
    # (bf16, concurrency 16, 4,000 requests, fifteen alternating pairs of fresh
    # predictors): passes of 18.8-20.8 ms against 18.9-24.5 without (5 of 15 above 21 ms),
    # 660-727 against 569-722 requests/s, ahead in 12 pairs, level in one; RSS the same
    # (581 against 583 MB, 44 MB of it in huge pages). Read once, at the first such block.
    "THP_MEM_ALLOC_ENABLE": "1",
}
"""Environment defaults for the predictor process, read by native libraries at load time."""
UNLESS_SET = {"GOMP_SPINCOUNT": "OMP_WAIT_POLICY"}
"""A default left out when the deployment sets this other variable (its choice wins)."""
SETTINGS: dict[str, str] = {}
"""What :func:`begin` set in this process, for the start-up log line (:func:`describe`)."""

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


def prepare_environment(environ: Any = None) -> dict[str, str]:
    """Set :data:`ENVIRONMENT`'s defaults where unset; returns those set (call before loading)."""
    environ = os.environ if environ is None else environ
    applied = {}
    for name, value in ENVIRONMENT.items():
        unless = UNLESS_SET.get(name)
        if name not in environ and (unless is None or unless not in environ):
            environ[name] = applied[name] = value
    return applied


KSERVE_NAMES = {
    # kserve's package __init__ re-exports these; the predictor's imports ask for them.
    "Model": "kserve.model",
    "ModelServer": "kserve.model_server",
    "PredictorConfig": "kserve.predictor_config",
    "ModelRepository": "kserve.model_repository",
    "InferRequest": "kserve.protocol.infer_type",
    "InferResponse": "kserve.protocol.infer_type",
    "InferInput": "kserve.protocol.infer_type",
    "InferOutput": "kserve.protocol.infer_type",
    "InferenceRESTClient": "kserve.inference_client",
    "InferenceGRPCClient": "kserve.inference_client",
    "RESTConfig": "kserve.inference_client",
}
"""Names of the ``kserve`` package resolved from one submodule each, without its __init__."""


def lean_kserve() -> ModuleType | None:
    """Register ``kserve`` as a package whose ``__init__`` runs only if something needs it.

    Its submodules (``kserve.model``, ``kserve.model_server``, ...) import as usual, because
    the package's ``__path__`` is set; the names above resolve from their submodule on
    first use; any other name (``kserve.KServeClient``, the ``V1beta1...`` models) runs the
    real ``__init__`` once, in the same module object, so nothing differs for code that
    needs it. Does nothing (returns None) when kserve is already imported or not installed.
    """
    if "kserve" in sys.modules:
        return None
    spec = importlib.util.find_spec("kserve")
    if spec is None or spec.loader is None or not spec.submodule_search_locations:
        return None
    package = importlib.util.module_from_spec(spec)  # __path__ and __spec__ set, not run
    lock = threading.RLock()
    state = {"complete": False}

    def complete() -> None:
        with lock:
            if not state["complete"]:
                state["complete"] = True
                del package.__getattr__
                spec.loader.exec_module(package)  # type: ignore[union-attr]

    def attribute(name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        submodule = KSERVE_NAMES.get(name)  # first: ``Model`` is not ``model.py``
        if submodule is not None:
            value = getattr(importlib.import_module(submodule), name)
            setattr(package, name, value)
            return value
        if importlib.util.find_spec(f"kserve.{name}") is not None:
            # A submodule (``from . import context`` asks the package first): import it.
            return importlib.import_module(f"kserve.{name}")
        complete()
        return getattr(package, name)

    package.__getattr__ = attribute  # type: ignore[method-assign]
    sys.modules["kserve"] = package
    return package


PAUSE_CPU_LIMIT_S = 4.0
"""Process CPU seconds after which the collector runs again even before the model is built.

A start with prepared caches uses 2.3-2.9 s (measured at load average 5-9); one that builds
them (trace, graphs, the parity gate's reference) runs for tens of seconds and makes
cyclic garbage that is worth collecting: with the collector off throughout, a first torch
start peaked 77 MB higher and kept 64 MB more after it.
"""

_gc_paused = False


def pause_gc(limit_s: float = PAUSE_CPU_LIMIT_S) -> None:
    """Collect no cyclic garbage during start-up, for at most ``limit_s`` of process CPU."""
    global _gc_paused
    if gc.isenabled():
        gc.disable()
        _gc_paused = True
        watcher = threading.Thread(
            target=_limit_pause, args=(limit_s,), name="gc-pause-limit", daemon=True
        )
        watcher.start()


def _limit_pause(limit_s: float) -> None:
    # process_time() is the whole process's CPU, every thread's; nothing is imported here.
    while _gc_paused and time.process_time() < limit_s:
        time.sleep(0.25)
    if _gc_paused:
        gc.enable()  # a long start: it builds caches, so collect as usual from now on


def resume_gc() -> None:
    """Freeze what start-up built and collect again (a no-op unless :func:`pause_gc` ran).

    After a long start (the collector already back on) one full collection first, so the
    garbage of building the caches is freed rather than frozen.
    """
    global _gc_paused
    if _gc_paused:
        _gc_paused = False
        if gc.isenabled():
            gc.collect()
        gc.freeze()
        gc.enable()


def describe() -> str:
    """The process settings :func:`begin` made, for one log line."""
    if not SETTINGS:
        return "process settings: none (start-up steps not run)"
    return "process settings: " + "; ".join(
        value if name == "malloc" else f"{name}={value}" for name, value in SETTINGS.items()
    )


def begin(runtime: str, *, skip_kserve_init: bool) -> None:
    """The start-up steps, in their order, before anything loads torch or onnxruntime.

    The collector pauses (``server.run`` resumes it once the model is built), the
    environment defaults are set before a native library reads them, kserve's package
    ``__init__`` is skipped where kserve is not imported yet (``skip_kserve_init``: not for
    ``modeldeploy serve``, whose option parser has imported it), malloc keeps what a
    pass frees (:mod:`allocator`), and the runtime's native libraries start loading on
    the other core.
    """
    from modeldeploy.serving import allocator

    pause_gc()
    SETTINGS.update(prepare_environment())
    SETTINGS["malloc"] = allocator.describe(allocator.keep_freed_memory())
    if skip_kserve_init:
        lean_kserve()
    preload_native(runtime)


ONE_ARENA = {"MALLOC_ARENA_MAX": "1"}
"""glibc malloc arenas for the predictor: one, the main heap, for every thread.

The inference thread is not the main thread, so glibc gives it an arena of its own, whose
heaps hold at most 64 MiB each. On AMX (bf16, concurrency 16) about one fresh predictor in
five passed 16 rows in 27-30 ms instead of 18-21, for its whole life, with 200-210 minor
page faults per pass against 25-45 (memory mapped and unmapped every pass, whatever the
thresholds of :mod:`allocator` say), and ``perf sched`` showed the kernel's
``rcu_preempt`` thread preempting its two compute threads some 220 times in 2 s against 3.
With ``MALLOC_ARENA_MAX=1`` in the environment, 14 of 14 fresh predictors were fast
(18.3-20.0 ms, 25-58 faults per pass) against 11 of 14 in alternation without it. Set
through ``mallopt`` once the process runs, the same limit did not help (3 slow of 14):
glibc must read it before the first allocation, hence :func:`with_one_arena`."""


def _glibc() -> bool:
    """Whether this process runs on glibc (asked of libc itself: ``platform.libc_ver``
    would read the interpreter's binary on every start)."""
    try:
        return (os.confstr("CS_GNU_LIBC_VERSION") or "").startswith("glibc")
    except (ValueError, OSError):  # not a GNU libc
        return False


def with_one_arena(environ: Any = None, execve: Any = None) -> None:
    """Start this process again with :data:`ONE_ARENA` where it is missing (glibc only).

    ``execve`` keeps the process id, its open files and its parent, so a supervisor sees one
    process; the interpreter's own options come back from ``sys.orig_argv``. Nothing happens
    where the environment already sets ``MALLOC_ARENA_MAX`` or ``GLIBC_TUNABLES`` (an
    operator's choice wins, and the second start finds it set).
    """
    environ = os.environ if environ is None else environ
    if "MALLOC_ARENA_MAX" in environ or "GLIBC_TUNABLES" in environ:
        return
    if not _glibc():
        return
    (execve or os.execve)(sys.executable, list(sys.orig_argv), {**environ, **ONE_ARENA})
