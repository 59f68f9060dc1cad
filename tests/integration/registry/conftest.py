"""Fixtures for the registry against real MLflow servers.

Most tests share the session ``mlflow_server`` and use unique model names. Webhook
and restart tests get a dedicated server: MLflow caches "which webhooks listen to this
event" for 60 s, so on a shared server a webhook created mid-session may stay silent;
ours sets the cache TTL to 1 s, and it can be stopped without disturbing other areas.
"""

from __future__ import annotations

import asyncio
import threading
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from aiohttp import web

from modeldeploy.registry.mlflow_client import MlflowRegistry
from tests.support.mlflow_server import MlflowServer, start_mlflow
from tests.support.processes import free_port


@pytest.fixture
def model_name() -> str:
    return f"reg-{uuid.uuid4().hex[:8]}"


@pytest.fixture
def registry(mlflow_server: MlflowServer) -> MlflowRegistry:
    return MlflowRegistry(mlflow_server.url)


@pytest.fixture(scope="module")
def own_mlflow(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MlflowServer]:
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MLFLOW_WEBHOOK_CACHE_TTL", "1")
        server = start_mlflow(tmp_path_factory.mktemp("registry-mlflow"))
    try:
        yield server
    finally:
        server.stop()


class BackgroundApp:
    """An aiohttp application served on a free loopback port from its own thread."""

    def __init__(self, app: web.Application) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._loop = asyncio.new_event_loop()
        self._runner = web.AppRunner(app)
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)

    def start(self) -> BackgroundApp:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(10)
        return self

    async def _start(self) -> None:
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()

    def stop(self) -> None:
        asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)


@pytest.fixture
def serve_app() -> Iterator[Callable[[web.Application], BackgroundApp]]:
    started: list[BackgroundApp] = []

    def start(app: web.Application) -> BackgroundApp:
        server = BackgroundApp(app).start()
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


@pytest.fixture
def checkpoint_copy(tiny_checkpoint: Path, tmp_path: Path) -> Path:
    """A private copy of the tiny checkpoint that a test may modify."""
    import shutil

    return Path(shutil.copytree(tiny_checkpoint, tmp_path / "tiny"))
