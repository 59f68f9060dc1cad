"""Predictor start-up: what is loaded ahead, and what a predictor never imports."""

from __future__ import annotations

import subprocess
import sys

import pytest

from modeldeploy.serving import startup


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
