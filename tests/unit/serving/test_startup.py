"""Predictor start-up: what is loaded ahead, and what a predictor never imports."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from modeldeploy.serving import startup
from modeldeploy.serving.backends.parity import check_finite


@pytest.mark.parametrize(
    ("argv", "runtime"),
    [
        (["--model-dir", "m", "--runtime", "onnx"], "onnx"),
        (["--runtime=onnx-int8", "--http-port", "1"], "onnx-int8"),
        (["--model-dir", "m"], "torch"),  # the predictor's default
        ([], "torch"),
    ],
)
def test_the_runtime_is_read_from_argv_before_the_real_parse(argv, runtime):
    assert startup.runtime_from_argv(argv) == runtime


def test_each_runtime_preloads_its_own_native_package():
    assert startup.packages_for("torch") == ("torch",)
    assert startup.packages_for("onnx") == startup.packages_for("onnx-int8") == ("onnxruntime",)


@pytest.mark.parametrize("package", ["torch", "onnxruntime"])
def test_the_preloaded_libraries_are_the_installed_ones(package):
    paths = startup.library_paths(package)
    assert paths and all(p.is_file() and p.suffix == ".so" for p in paths)
    assert startup.library_paths("surely_not_installed_here") == []


def test_preloading_then_importing_works_in_a_fresh_process():
    script = (
        "from modeldeploy.serving.startup import preload_native\n"
        "thread = preload_native('torch'); thread.join()\n"
        "import torch\n"
        "print(float(torch.ones(2).sum()))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=120
    )
    assert out.stdout.strip() == "2.0"


def test_a_predictor_does_not_import_the_routers_http_client():
    # middleware imports router.responses; the router's aiohttp client is not the
    # predictor's business (it costs about 0.3 s of CPU at every start).
    script = (
        "import sys\n"
        "import modeldeploy.serving.middleware, modeldeploy.serving.feedback\n"
        "from modeldeploy.serving.router import Split\n"
        "print('aiohttp' in sys.modules, Split.__name__)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=120
    )
    assert out.stdout.split() == ["False", "Split"]


class _CountingBackend:
    """Records how many intra-op threads each batch was scored with."""

    runtime = "torch-bf16"

    def __init__(self) -> None:
        self.threads = 2
        self.seen: list[int] = []

    @contextlib.contextmanager
    def single_threaded(self) -> Iterator[None]:
        configured, self.threads = self.threads, 1
        try:
            yield
        finally:
            self.threads = configured

    def logits(self, ids: np.ndarray, mask: np.ndarray) -> np.ndarray:
        self.seen.append(self.threads)
        return np.zeros((len(ids), 2))


class _Encoder:
    pad_id = 0

    def encode(self, texts):
        return [SimpleNamespace(ids=[1, 2], truncated=False) for _ in texts]


def test_the_finite_check_runs_single_threaded_where_the_backend_offers_it():
    backend = _CountingBackend()
    assert check_finite(backend, _Encoder(), ["a"] * 40) == 40  # type: ignore[arg-type]
    assert backend.seen == [1, 1, 1] and backend.threads == 2  # restored afterwards


def test_torch_single_threaded_restores_the_configured_threads():
    import torch

    from modeldeploy.serving.backends.torch_backend import TorchBackend

    backend = object.__new__(TorchBackend)  # no checkpoint needed for the thread switch
    backend._torch = torch
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        with backend.single_threaded():
            assert torch.get_num_threads() == 1
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)


def test_environment_defaults_are_set_only_where_unset():
    environ: dict[str, str] = {}
    defaults = {
        "TORCH_DEVICE_BACKEND_AUTOLOAD": "0",
        "GOMP_SPINCOUNT": "20000",
        "THP_MEM_ALLOC_ENABLE": "1",
    }
    assert startup.prepare_environment(environ) == defaults
    assert environ == defaults
    assert startup.prepare_environment(environ) == {}  # idempotent
    chosen = {"TORCH_DEVICE_BACKEND_AUTOLOAD": "1", "THP_MEM_ALLOC_ENABLE": "0"}  # theirs win
    assert startup.prepare_environment(chosen) == {"GOMP_SPINCOUNT": "20000"}
    assert chosen["THP_MEM_ALLOC_ENABLE"] == "0"
    assert chosen["TORCH_DEVICE_BACKEND_AUTOLOAD"] == "1"
    assert "OMP_WAIT_POLICY" not in startup.ENVIRONMENT  # the deployment's to choose


def test_a_deployments_wait_policy_keeps_the_spin_count_default_out():
    """OMP_WAIT_POLICY=PASSIVE (a predictor sharing its cores) must not be overridden by a
    spin count that keeps threads awake: libgomp reads both."""
    environ = {"OMP_WAIT_POLICY": "PASSIVE"}
    assert startup.prepare_environment(environ) == {
        "TORCH_DEVICE_BACKEND_AUTOLOAD": "0",
        "THP_MEM_ALLOC_ENABLE": "1",
    }
    assert "GOMP_SPINCOUNT" not in environ


def test_a_predictor_process_starts_with_the_settings_and_says_so():
    script = (
        "import os\n"
        "for name in ('GOMP_SPINCOUNT', 'OMP_WAIT_POLICY', 'MALLOC_TRIM_THRESHOLD_',\n"
        "             'MALLOC_MMAP_THRESHOLD_', 'GLIBC_TUNABLES'):\n"
        "    os.environ.pop(name, None)\n"
        "from modeldeploy.serving import startup\n"
        "startup.begin('onnx', skip_kserve_init=False)\n"
        "print(os.environ['GOMP_SPINCOUNT'], '|', startup.describe())\n"
    )
    words = _fresh(script)
    assert words[0] == "20000"
    line = " ".join(words[2:])
    assert "GOMP_SPINCOUNT=20000" in line and "mmap_threshold 32 MiB" in line, line
    assert "trim_threshold 256 MiB" in line


THP_SETTING = Path("/sys/kernel/mm/transparent_hugepage/enabled")


def _thp_setting() -> str:
    """The kernel's THP mode (``always``, ``madvise``, ``never``), or ``absent`` without THP."""
    try:
        text = THP_SETTING.read_text()
    except OSError:
        return "absent"
    return text.split("[", 1)[1].split("]", 1)[0]


def test_a_predictor_process_gets_huge_pages_for_torchs_large_blocks():
    """With the predictor's environment, torch advises huge pages for a large block (what
    the weights are: the mapping's ``hg`` flag) and, where the kernel grants them, gets
    them; without it, nothing is advised, and on a kernel that leaves huge pages to
    madvise none are granted. Every kernel runs it: what it checks depends on the mode."""
    script = (
        "import os, sys\n"
        "os.environ.pop('THP_MEM_ALLOC_ENABLE', None)\n"
        "from modeldeploy.serving import startup\n"
        "if sys.argv[1] == 'predictor':\n"
        "    startup.prepare_environment()\n"
        "import torch\n"
        "block = torch.ones(8 << 20, dtype=torch.bfloat16)  # 16 MiB, touched\n"
        "address, advised, inside = block.data_ptr(), False, False\n"
        "for line in open('/proc/self/smaps'):\n"
        "    head = line.split()[0]\n"
        "    if '-' in head and not head.endswith(':'):\n"
        "        low, high = (int(x, 16) for x in head.split('-'))\n"
        "        inside = low <= address < high\n"
        "    elif inside and head == 'VmFlags:':\n"
        "        advised = 'hg' in line.split()[1:]\n"
        "rollup = open('/proc/self/smaps_rollup').read().splitlines()\n"
        "huge = [int(l.split()[1]) for l in rollup if l.startswith('AnonHugePages')][0]\n"
        "print(int(advised), huge)\n"
    )

    def run(mode: str) -> tuple[bool, int]:
        out = subprocess.run(
            [sys.executable, "-c", script, mode],
            capture_output=True,
            text=True,
            check=True,
            timeout=120,
        )
        advised, huge_kb = out.stdout.split()[-2:]
        return advised == "1", int(huge_kb)

    setting = _thp_setting()
    (advised, huge_kb), (plain_advised, plain_kb) = run("predictor"), run("plain")
    assert not plain_advised  # torch alone advises nothing
    assert advised == (setting != "absent"), setting  # asked wherever the kernel has THP
    if setting in ("always", "madvise"):
        assert huge_kb >= 8 * 1024  # most of the 16 MiB block, in 2 MiB pages
    if setting == "madvise":
        assert plain_kb < 8 * 1024


def _fresh(script: str) -> list[str]:
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=120
    )
    return out.stdout.split()


def test_lean_kserve_serves_the_predictor_without_the_kubernetes_client():
    # What the predictor imports (server.build/run, the model, the middleware) resolves
    # from kserve's submodules; the package __init__ (Kubernetes client, API models) never
    # runs on that path.
    script = (
        "import sys\n"
        "from modeldeploy.serving.startup import lean_kserve\n"
        "assert lean_kserve() is not None\n"
        "import kserve.model_server\n"
        "from kserve import Model, ModelServer\n"
        "import modeldeploy.serving.server, modeldeploy.serving.model\n"
        "import modeldeploy.serving.middleware, modeldeploy.serving.errors\n"
        "import kserve.model\n"
        "print('kubernetes' in sys.modules, Model is kserve.model.Model,\n"
        "      ModelServer is kserve.model_server.ModelServer)\n"
    )
    assert _fresh(script) == ["False", "True", "True"]


def test_lean_kserve_completes_the_package_for_any_other_name():
    script = (
        "import sys\n"
        "from modeldeploy.serving.startup import lean_kserve\n"
        "lean_kserve()\n"
        "from kserve import Model\n"
        "import kserve\n"
        "from kserve import V1beta1InferenceService\n"  # runs the real __init__ once
        "print('kubernetes' in sys.modules, kserve.KServeClient.__name__,\n"
        "      kserve.Model is Model, V1beta1InferenceService.__name__)\n"
    )
    assert _fresh(script) == ["True", "KServeClient", "True", "V1beta1InferenceService"]


def test_lean_kserve_leaves_an_imported_kserve_alone():
    script = (
        "import kserve\n"
        "from modeldeploy.serving.startup import lean_kserve\n"
        "print(lean_kserve() is None, hasattr(kserve, 'KServeClient'))\n"
    )
    assert _fresh(script) == ["True", "True"]


def test_start_up_pauses_the_collector_and_resuming_freezes_what_it_built():
    script = (
        "import gc\n"
        "from modeldeploy.serving.startup import pause_gc, resume_gc\n"
        "pause_gc()\n"
        "paused = gc.isenabled()\n"
        "import json, decimal\n"
        "resume_gc()\n"
        "print(paused, gc.isenabled(), gc.get_freeze_count() > 0)\n"
        "resume_gc()\n"  # a second resume changes nothing
        "print(gc.isenabled())\n"
    )
    assert _fresh(script) == ["False", "True", "True", "True"]


def test_resuming_without_a_pause_changes_nothing():
    script = (
        "import gc\n"
        "from modeldeploy.serving.startup import resume_gc\n"
        "gc.disable()\n"  # someone else's choice
        "resume_gc()\n"
        "print(gc.isenabled(), gc.get_freeze_count())\n"
    )
    assert _fresh(script) == ["False", "0"]


_CYCLE_AFTER_PAUSE = (
    "import gc, time, weakref\n"
    "from modeldeploy.serving.startup import pause_gc, resume_gc\n"
    "pause_gc(limit_s=LIMIT)\n"
    "deadline = time.monotonic() + 10\n"
    "while LIMIT == 0 and not gc.isenabled() and time.monotonic() < deadline:\n"
    "    time.sleep(0.05)\n"
    "back = gc.isenabled()\n"
    "class Node: pass\n"
    "a, b = Node(), Node(); a.b, b.a = b, a\n"
    "alive = weakref.ref(a)\n"
    "del a, b\n"
    "resume_gc()\n"
    "print(back, gc.isenabled(), alive() is None)\n"
)


def test_a_long_start_gets_its_collector_back_and_its_garbage_collected():
    # Past the CPU limit a start is building caches: the collector runs again before
    # the model is built, and resuming collects that garbage instead of freezing it.
    assert _fresh(_CYCLE_AFTER_PAUSE.replace("LIMIT", "0")) == ["True", "True", "True"]


def test_a_short_start_freezes_its_garbage_without_a_collection():
    assert _fresh(_CYCLE_AFTER_PAUSE.replace("LIMIT", "1000")) == ["False", "True", "False"]


def test_the_predictor_starts_again_with_one_malloc_arena_unless_the_environment_says():
    calls: list[tuple[str, list[str], dict[str, str]]] = []

    def execve(path: str, argv: list[str], env: dict[str, str]) -> None:
        calls.append((path, argv, env))

    startup.with_one_arena({"PATH": "/bin"}, execve)
    ((path, argv, env),) = calls
    assert path == sys.executable and argv == list(sys.orig_argv)
    assert env == {"PATH": "/bin", "MALLOC_ARENA_MAX": "1"}
    for chosen in ({"MALLOC_ARENA_MAX": "4"}, {"GLIBC_TUNABLES": "glibc.malloc.arena_max=2"}):
        startup.with_one_arena(chosen, execve)  # the operator's choice, or the second start
    assert len(calls) == 1


def test_starting_again_keeps_the_process_and_its_options():
    """A real ``execve``: same process id, the interpreter's own options kept, the script
    run once more with the arena limit set (and then not again)."""
    script = (
        "import os, sys\n"
        "from modeldeploy.serving import startup\n"
        "startup.with_one_arena()\n"
        "print(os.getpid(), os.environ.get('MALLOC_ARENA_MAX'), sys.flags.dont_write_bytecode)\n"
    )
    env = {k: v for k, v in os.environ.items() if k not in ("MALLOC_ARENA_MAX", "GLIBC_TUNABLES")}
    proc = subprocess.Popen(
        [sys.executable, "-B", "-c", script], stdout=subprocess.PIPE, text=True, env=env
    )
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode == 0
    assert out.split() == [str(proc.pid), "1", "1"]  # one line: the second start only
