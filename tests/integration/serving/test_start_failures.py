"""A predictor that cannot start says why in one last line and exits with a code per kind.

Real ``python -m modeldeploy.serving`` processes on copies of the tiny checkpoint; none of
them may open its port, and none may print a traceback.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from modeldeploy.registry import manifest
from modeldeploy.serving.__main__ import EXIT_CODES
from modeldeploy.serving.loading import EXPECTED_DIGEST_ENV
from tests.support.processes import free_port

pytestmark = pytest.mark.slow


def start(model_dir: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    argv = [
        sys.executable, "-m", "modeldeploy.serving", "--model-dir", str(model_dir),
        "--http-port", str(free_port()), "--grpc-port", "0", "--threads", "1",
    ]  # fmt: skip
    environ = {k: v for k, v in os.environ.items() if k != EXPECTED_DIGEST_ENV}
    return subprocess.run(
        argv, env={**environ, **(env or {})}, capture_output=True, text=True, timeout=180
    )


def last_line(done: subprocess.CompletedProcess) -> str:
    return done.stderr.strip().splitlines()[-1]


def assert_one_line_failure(done: subprocess.CompletedProcess, kind: str) -> str:
    assert done.returncode == EXIT_CODES[kind], done.stderr[-2000:]
    assert "Traceback" not in done.stderr
    line = last_line(done)
    assert line.startswith(f"error: {kind}: ")
    return line


def copy_of(tiny: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(tiny, tmp_path / "model"))


def set_classifier_bias(path: Path, value: float) -> None:
    weights = load_file(path / "model.safetensors")
    bias = next(k for k in weights if k.startswith("classifier") and k.endswith("bias"))
    weights[bias] = torch.full_like(weights[bias], value)
    save_file(weights, path / "model.safetensors", metadata={"format": "pt"})


def test_altered_weights_in_a_sealed_dir_are_refused(tiny_checkpoint: Path, tmp_path: Path):
    assert manifest.read_seal(tiny_checkpoint) is not None  # the factory seals what it builds
    path = copy_of(tiny_checkpoint, tmp_path)
    set_classifier_bias(path, 0.5)
    line = assert_one_line_failure(start(path), "integrity")
    assert "model.safetensors" in line and manifest.SEAL_FILE in line


def test_an_unsealed_dir_without_an_expected_digest_is_refused(
    tiny_checkpoint: Path, tmp_path: Path
):
    path = copy_of(tiny_checkpoint, tmp_path)
    (path / manifest.SEAL_FILE).unlink()
    line = assert_one_line_failure(start(path), "integrity")
    assert "registry seal" in line and EXPECTED_DIGEST_ENV in line


def test_nan_weights_never_become_ready(tiny_checkpoint: Path, tmp_path: Path):
    """A NaN checkpoint that is correctly sealed (published broken) is stopped by the
    finite-output check on the parity sentences, before the port opens."""
    path = copy_of(tiny_checkpoint, tmp_path)
    set_classifier_bias(path, float("nan"))
    manifest.seal(path)
    line = assert_one_line_failure(start(path), "nan")
    assert "NaN logits" in line


def test_a_checkpoint_missing_its_tokenizer_is_a_load_failure(
    tiny_checkpoint: Path, tmp_path: Path
):
    path = copy_of(tiny_checkpoint, tmp_path)
    (path / "tokenizer.json").unlink()
    manifest.seal(path)
    line = assert_one_line_failure(start(path), "load")
    assert "missing tokenizer.json" in line
