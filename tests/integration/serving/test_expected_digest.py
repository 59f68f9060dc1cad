"""A predictor started with the wrong MODELDEPLOY_EXPECTED_DIGEST refuses to start."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from modeldeploy.registry import manifest
from modeldeploy.serving.config import ModelSource, ServeConfig
from modeldeploy.serving.loading import EXPECTED_DIGEST_ENV
from modeldeploy.serving.server import build
from tests.support.processes import free_port

pytestmark = pytest.mark.slow


def test_wrong_digest_exits_3_with_a_clear_message_and_opens_no_port(tiny_checkpoint: Path):
    port = free_port()
    env = {**os.environ, EXPECTED_DIGEST_ENV: "0" * 64}
    argv = [
        sys.executable, "-m", "modeldeploy.serving", "--model-dir", str(tiny_checkpoint),
        "--http-port", str(port), "--grpc-port", "0", "--threads", "1",
    ]  # fmt: skip
    done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=180)
    assert done.returncode == 3
    assert done.stderr.strip().splitlines()[-1].startswith("error: integrity: wrong checkpoint")
    assert "0" * 64 in done.stderr and EXPECTED_DIGEST_ENV in done.stderr


def test_the_right_digest_loads(tiny_checkpoint: Path, monkeypatch: pytest.MonkeyPatch):
    digest = manifest.manifest_sha256(manifest.build_manifest(tiny_checkpoint))
    monkeypatch.setenv(EXPECTED_DIGEST_ENV, digest)
    config = ServeConfig(
        source=ModelSource(model_dir=tiny_checkpoint), deployment="test-digest", threads=1
    )
    model = build(config)
    assert model.checkpoint.path == tiny_checkpoint
