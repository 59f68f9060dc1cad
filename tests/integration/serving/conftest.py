"""Real predictor processes for the serving integration tests (started once per module)."""

from __future__ import annotations

import sys
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support.processes import ManagedProcess, free_port, http_ok, start_process


@dataclass
class Predictor:
    process: ManagedProcess
    http_port: int
    grpc_port: int
    name: str = "classifier"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    @property
    def v1(self) -> str:
        return f"{self.url}/v1/models/{self.name}:predict"

    @property
    def v2(self) -> str:
        return f"{self.url}/v2/models/{self.name}/infer"


def start_predictor(
    log_dir: Path,
    model_dir: Path,
    extra: Sequence[str] = (),
    name: str = "predictor",
    *,
    env: Mapping[str, str] | None = None,
    timeout: float = 120,
) -> Predictor:
    http_port, grpc_port = free_port(), free_port()
    argv = [
        sys.executable,
        "-m",
        "modeldeploy.serving",
        "--model-dir",
        str(model_dir),
        "--http-port",
        str(http_port),
        "--grpc-port",
        str(grpc_port),
        "--threads",
        "1",
        "--precision",  # these tests compare probabilities with the fp32 reference at 1e-4
        "fp32",
        "--response-detail",  # they read the whole answer; test_client_view.py the label view
        "full",
        *extra,
    ]
    ready = f"http://127.0.0.1:{http_port}/v2/health/ready"
    proc = start_process(
        name, argv, log_dir, lambda: http_ok(ready), port=http_port, env=env, timeout=timeout
    )
    return Predictor(proc, http_port, grpc_port)


@pytest.fixture(scope="session")
def tiny_predictor(
    tiny_checkpoint: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Predictor]:
    """One tiny-BERT predictor shared by the protocol, input, feedback and metrics tests.

    Limits are small so each bad-input case is cheap to provoke; the batch delay is long
    enough that concurrent requests visibly share forward passes.
    """
    predictor = start_predictor(
        tmp_path_factory.mktemp("tiny-predictor"),
        tiny_checkpoint,
        [
            "--deployment",
            "demo",
            "--role",
            "canary",
            "--model-version",
            "7",
            "--max-batch-size",
            "16",
            "--max-batch-delay-ms",
            "20",
            "--max-instances",
            "4",
            "--max-chars",
            "2000",
            "--max-body-bytes",
            "20000",
            "--feedback-ttl-s",
            "2",
        ],
        name="tiny-predictor",
    )
    try:
        yield predictor
    finally:
        predictor.process.stop()
