"""Launch the real ``tritonserver`` that ships inside ``nvidia-pytriton``, on loopback.

The wheel carries the binary, its libraries and a Python-backend stub per Python version,
but not laid out as a Triton install. ``prepare_install`` lays it out in a temp dir
(bin/, backends/, caches/, with the 3.11 stub inside backends/python/); ``server_env`` puts
this interpreter's libpython and the wheel's libraries first on ``LD_LIBRARY_PATH`` (else the
stub loads Debian's libpython 3.11.2 and model loading fails with
``'_thread.RLock' object has no attribute '_recursion_count'``) and this venv first on
``PATH`` (the embedded interpreter finds its site-packages from there). See NOTES.md.

Use::

    with TritonServer(repository) as triton:
        triton.load("tiny")
        ... triton.http_url ...

Models are loaded explicitly (``--model-control-mode=explicit``), and a model that fails to
load does not take the server down (``--exit-on-error=false``): ``load`` raises instead.
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import signal
import subprocess
import sys
import sysconfig
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

from modeldeploy.serving.contract.triton import ENV_RESPONSE_DETAIL, TRITON_METRICS_ARGS
from modeldeploy.serving.ports import pick_port

# Latency metrics Triton 2.51 can add (``tritonserver --help`` lists only ``counter_latencies``,
# ``summary_latencies`` and ``summary_quantiles``; it has no per-request histogram option).
# The summaries give queue and compute quantiles per model; the ``modeldeploy_*`` histogram
# the analysis reads comes from model.py. A KServe ServingRuntime for Triton takes the same.
METRICS_ARGS = TRITON_METRICS_ARGS


class TritonError(Exception):
    """The server did not start, did not become ready, or refused a model operation."""


@dataclass(frozen=True)
class Distribution:
    """Where the pieces of the bundled Triton live inside site-packages."""

    root: Path  # .../site-packages/pytriton/tritonserver
    libs: Path  # .../site-packages/nvidia_pytriton.libs

    @classmethod
    def locate(cls) -> Distribution:
        # find_spec, not import: ``import pytriton`` pulls in tritonclient.grpc, which cannot
        # live in one process with kserve (both register inference.ServerLiveRequest).
        spec = importlib.util.find_spec("pytriton")
        if spec is None or not spec.submodule_search_locations:
            raise TritonError("nvidia-pytriton is not installed")
        root = Path(next(iter(spec.submodule_search_locations))).resolve() / "tritonserver"
        libs = root.parent.parent / "nvidia_pytriton.libs"
        if not (root / "bin" / "tritonserver").is_file():
            raise TritonError(f"no tritonserver binary under {root}: is nvidia-pytriton installed?")
        return cls(root=root, libs=libs)

    def stub(self, python_version: str) -> Path:
        return self.root / "python_backend_stubs" / python_version / "triton_python_backend_stub"


@dataclass(frozen=True)
class Ports:
    http: int
    grpc: int
    metrics: int


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now and that no other caller on this
    machine is handed meanwhile (:func:`modeldeploy.serving.ports.pick_port`)."""
    return pick_port()


def prepare_install(dist: Distribution, target: Path, python_version: str | None = None) -> Path:
    """Lay out bin/, backends/ (with the stub) and caches/ under ``target``; return it."""
    version = python_version or f"{sys.version_info.major}.{sys.version_info.minor}"
    stub = dist.stub(version)
    if not stub.is_file():
        raise TritonError(f"nvidia-pytriton has no Python-backend stub for Python {version}")
    for part in ("bin", "backends", "caches"):
        shutil.copytree(dist.root / part, target / part, dirs_exist_ok=True)
    shutil.copy2(stub, target / "backends" / "python" / "triton_python_backend_stub")
    return target


def server_env(
    base: Mapping[str, str], dist: Distribution, venv_bin: Path, libdir: str | None
) -> dict[str, str]:
    """The environment tritonserver and its Python stubs need (pure)."""
    env = dict(base)
    libraries = [p for p in (libdir, str(dist.libs)) if p]
    if env.get("LD_LIBRARY_PATH"):
        libraries.append(env["LD_LIBRARY_PATH"])
    env["LD_LIBRARY_PATH"] = os.pathsep.join(libraries)
    env["PATH"] = os.pathsep.join([str(venv_bin), *filter(None, [env.get("PATH")])])
    return env


def server_argv(
    install: Path, repository: Path, ports: Ports, extra: Sequence[str] = ()
) -> list[str]:
    """The tritonserver command line: loopback only, explicit model control (pure)."""
    return [
        str(install / "bin" / "tritonserver"),
        f"--model-repository={repository}",
        f"--backend-directory={install / 'backends'}",
        f"--cache-directory={install / 'caches'}",
        "--model-control-mode=explicit",
        "--exit-on-error=false",
        "--http-address=127.0.0.1",
        f"--http-port={ports.http}",
        "--grpc-address=127.0.0.1",
        f"--grpc-port={ports.grpc}",
        "--metrics-address=127.0.0.1",
        f"--metrics-port={ports.metrics}",
        "--log-verbose=0",
        *METRICS_ARGS,
        *extra,
    ]


class TritonServer:
    """A tritonserver process for one model repository; a context manager.

    ``start`` returns once ``/v2/health/ready`` answers; ``stop`` sends SIGTERM to the
    process group (the Python stubs included) and SIGKILLs it after ``stop_timeout``.
    """

    def __init__(
        self,
        repository: Path,
        *,
        log_path: Path | None = None,
        extra_args: Sequence[str] = (),
        startup_timeout: float = 60.0,
        stop_timeout: float = 15.0,
        env: Mapping[str, str] | None = None,
        response_detail: str = "full",
    ) -> None:
        self.repository = Path(repository).resolve()
        # Added to this process's environment (model.py sees it). The client view defaults
        # to full here, unlike on a cluster (the operator passes the spec's, label by
        # default): this launcher's callers, benchmarks and tests, compare the scores.
        self.env = {ENV_RESPONSE_DETAIL: response_detail, **(env or {})}
        self.log_path = log_path
        self.extra_args = tuple(extra_args)
        self.startup_timeout = startup_timeout
        self.stop_timeout = stop_timeout
        self.ports = Ports(free_port(), free_port(), free_port())
        self._process: subprocess.Popen[bytes] | None = None
        self._install: tempfile.TemporaryDirectory[str] | None = None
        self._log: Path | None = None

    @property
    def http_url(self) -> str:
        return f"http://127.0.0.1:{self.ports.http}"

    @property
    def grpc_address(self) -> str:
        return f"127.0.0.1:{self.ports.grpc}"

    @property
    def metrics_url(self) -> str:
        return f"http://127.0.0.1:{self.ports.metrics}/metrics"

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process else None

    def start(self) -> TritonServer:
        if self._process is not None:
            raise TritonError("already started")
        dist = Distribution.locate()
        self._install = tempfile.TemporaryDirectory(prefix="modeldeploy-triton-")
        install = prepare_install(dist, Path(self._install.name))
        env = server_env(
            {**os.environ, **self.env},
            dist,
            Path(sys.prefix) / "bin",
            sysconfig.get_config_var("LIBDIR"),
        )
        self._log = self.log_path or install / "tritonserver.log"
        self._log.parent.mkdir(parents=True, exist_ok=True)
        argv = server_argv(install, self.repository, self.ports, self.extra_args)
        with open(self._log, "ab") as log:
            self._process = subprocess.Popen(
                argv, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True
            )
        deadline = time.monotonic() + self.startup_timeout
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                tail = self.log_tail()
                self.stop()
                raise TritonError(f"tritonserver exited before it was ready:\n{tail}")
            if self._get("/v2/health/ready") == 200:
                return self
            time.sleep(0.1)
        tail = self.log_tail()
        self.stop()
        raise TritonError(f"tritonserver not ready after {self.startup_timeout:.0f}s:\n{tail}")

    def stop(self) -> None:
        process, self._process = self._process, None
        if process is not None and process.poll() is None:
            try:
                os.killpg(process.pid, signal.SIGTERM)
                process.wait(timeout=self.stop_timeout)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout=self.stop_timeout)
            except ProcessLookupError:
                pass
        if self._install is not None:  # a log_path given by the caller lives outside it
            self._install.cleanup()
            self._install = None

    def __enter__(self) -> TritonServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    def load(self, name: str, timeout: float = 300.0) -> None:
        """Load (or reload) every version of ``name`` the repository holds; raise on failure."""
        status, body = self._post(f"/v2/repository/models/{name}/load", timeout)
        if status != 200:
            raise TritonError(f"loading {name!r} failed ({status}): {body}\n{self.log_tail()}")

    def unload(self, name: str, timeout: float = 60.0) -> None:
        status, body = self._post(f"/v2/repository/models/{name}/unload", timeout)
        if status != 200:
            raise TritonError(f"unloading {name!r} failed ({status}): {body}")

    def model_ready(self, name: str, version: int | None = None) -> bool:
        path = f"/v2/models/{name}" + (f"/versions/{version}" if version else "") + "/ready"
        return self._get(path) == 200

    def log_tail(self, chars: int = 4000) -> str:
        try:
            return self._log.read_text(errors="replace")[-chars:] if self._log else ""
        except OSError:
            return ""

    def _get(self, path: str) -> int:
        try:
            with urllib.request.urlopen(self.http_url + path, timeout=2) as response:
                return int(response.status)
        except urllib.error.HTTPError as exc:
            return int(exc.code)
        except (urllib.error.URLError, OSError):
            return 0

    def _post(self, path: str, timeout: float) -> tuple[int, str]:
        request = urllib.request.Request(
            self.http_url + path, data=json.dumps({}).encode(), method="POST"
        )
        request.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:
                return int(response.status), response.read().decode(errors="replace")
        except urllib.error.HTTPError as exc:
            return int(exc.code), exc.read().decode(errors="replace")
        except (urllib.error.URLError, OSError) as exc:
            return 0, str(exc)
