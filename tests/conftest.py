"""Fixtures every part of the suite shares: checkpoints, a real MLflow, managed processes."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from modeldeploy.tools.checkpoints import build
from tests.support.mlflow_server import MlflowServer, start_mlflow
from tests.support.processes import ManagedProcess, free_port, start_process

KSERVE_CRDS = Path(__file__).resolve().parent / "upstream" / "kserve-crds"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Run the modules that hold a test marked ``long`` first, each module whole.

    ``make test`` runs two processes (``--dist worksteal``): each takes one contiguous half of
    the list, and an idle one steals from the end of the other's. A test of minutes that
    starts late leaves the other process idle for as long (it cannot steal the one test that
    is running), so the long ones go first and the quick unit tests fill the end. Whole
    modules move, so a module-scoped fixture is still set up once.
    """
    first = {item.nodeid.split("::")[0] for item in items if item.get_closest_marker("long")}
    items.sort(key=lambda item: item.nodeid.split("::")[0] not in first)


@pytest.fixture(scope="session")
def checkpoint() -> Callable[[str], Path]:
    """Build (or reuse from the cache) a named recipe and return its directory."""
    return build


@pytest.fixture(scope="session")
def tiny_checkpoint() -> Path:
    """A 2-layer BERT classifier built in seconds: for mechanics, not accuracy."""
    return build("tiny")


@pytest.fixture(scope="session")
def good_checkpoint() -> Path:
    """The MiniLM-L6 classifier the demo promotes (built in about a minute, then cached)."""
    return build("good")


@pytest.fixture(scope="session")
def bad_checkpoint() -> Path:
    """A clearly worse MiniLM-L6 classifier (undertrained)."""
    return build("bad")


@pytest.fixture(scope="session")
def mlflow_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MlflowServer]:
    """One real MLflow server (sqlite, loopback, free port) for the session."""
    server = start_mlflow(tmp_path_factory.mktemp("mlflow"))
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def process_starter(tmp_path: Path) -> Iterator[Callable[..., ManagedProcess]]:
    """Start project processes that are stopped when the test ends."""
    started: list[ManagedProcess] = []

    def start(name: str, argv: list[str], ready: Callable[[], bool], **kwargs) -> ManagedProcess:
        proc = start_process(name, argv, tmp_path / "logs", ready, **kwargs)
        started.append(proc)
        return proc

    yield start
    for proc in reversed(started):
        proc.stop()


@pytest.fixture
def port() -> int:
    return free_port()


@pytest.fixture(scope="session")
def kserve_crds() -> Path:
    """KServe's own CRDs, vendored in tests/upstream (a missing copy fails, never skips)."""
    assert KSERVE_CRDS.is_dir(), f"KServe CRDs not found at {KSERVE_CRDS}"
    return KSERVE_CRDS
