"""Fixtures for the provider tests: the stand-in exporter and a real Prometheus."""

from __future__ import annotations

import shutil
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support.processes import ManagedProcess, free_port, http_ok

EXPORTER = Path(__file__).with_name("exporter.py")


@dataclass
class Exporter:
    process: ManagedProcess
    port: int
    control: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/metrics"

    def bump(self, timeout: float = 10.0) -> None:
        """Apply the known batch once more and wait until the process has done so."""
        flag = self.control / "bump"
        flag.touch()
        deadline = time.monotonic() + timeout
        while flag.exists():
            if time.monotonic() > deadline:
                raise TimeoutError("exporter did not apply the batch")
            time.sleep(0.05)


@pytest.fixture
def start_exporter(process_starter, tmp_path: Path) -> Callable[[int | None], Exporter]:
    def start(port: int | None = None) -> Exporter:
        port = port or free_port()
        control = tmp_path / f"control-{port}"
        control.mkdir(exist_ok=True)
        process = process_starter(
            f"exporter-{port}",
            [sys.executable, str(EXPORTER), str(port), str(control)],
            lambda: http_ok(f"http://127.0.0.1:{port}/metrics"),
            port=port,
        )
        return Exporter(process, port, control)

    return start


@pytest.fixture
def exporter(start_exporter) -> Exporter:
    return start_exporter()


@dataclass
class Prometheus:
    process: ManagedProcess
    url: str


@pytest.fixture
def prometheus(process_starter, tmp_path: Path, exporter: Exporter) -> Prometheus:
    """A real Prometheus on a free loopback port scraping the exporter every second."""
    binary = shutil.which("prometheus")
    if binary is None:
        pytest.fail("the Debian prometheus binary is not installed: run `make system-deps`")
    port = free_port()
    config = tmp_path / "prometheus.yml"
    config.write_text(
        "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n"
        "scrape_configs:\n  - job_name: serving\n    static_configs:\n"
        f"      - targets: ['127.0.0.1:{exporter.port}']\n"
    )
    url = f"http://127.0.0.1:{port}"
    process = process_starter(
        "prometheus",
        [
            binary,
            f"--config.file={config}",
            f"--storage.tsdb.path={tmp_path / 'tsdb'}",
            f"--web.listen-address=127.0.0.1:{port}",
        ],
        lambda: http_ok(f"{url}/-/ready"),
        port=port,
        timeout=60,
    )
    return Prometheus(process, url)
