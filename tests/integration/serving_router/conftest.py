"""Small aiohttp stand-ins for predictor arms, and a router in front of them.

A fake arm answers v1/v2 like the predictor does (same fields the router reads) with a
rule a test can reason about: a text containing "good" is positive. A ``wrong`` arm
answers the opposite. Each arm records what reached it, so tests see the traffic.
By default the arms answer in the full view (their version in every answer) and the router
is configured for it; ``start_router(label_view=True)`` has them answer as a predictor does
with ``--response-detail label`` (no version) and gives the router their versions instead.
The real-predictor test in test_router_processes.py checks the same paths end to end.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import pytest_asyncio
from aiohttp import web
from aiohttp.test_utils import TestServer

from modeldeploy.serving.router import RouterConfig, Split, serve
from modeldeploy.serving.router.app import ROUTER_KEY, Router
from tests.support.processes import free_port

LABELS = ("negative", "positive")


@dataclass
class FakeArm:
    version: str
    wrong: bool = False
    full: bool = True
    """Answer in the full view (with the version), else in the label view (without)."""
    ready: bool = True
    """What KServe's v1 readiness says; a not-ready arm answers 503 to predictions."""
    failing: bool = False
    """Ready, but every v1 prediction fails with a 500 (a broken model that loaded)."""
    predictions: list[dict[str, Any]] = field(default_factory=list)
    feedback: list[dict[str, Any]] = field(default_factory=list)
    server: TestServer | None = None
    base_url: str = ""

    def classify(self, text: str) -> int:
        return int(("good" in text) != self.wrong)

    @property
    def url(self) -> str:
        assert self.base_url, "start the arm first"
        return self.base_url

    def app(self) -> web.Application:
        async def v1(request: web.Request) -> web.Response:
            if not self.ready:
                return web.json_response({"error": "model not ready"}, status=503)
            if self.failing:
                return web.json_response({"error": "inference failed"}, status=500)
            body = await request.json()
            rid = body.get("id") or request.headers["x-request-id"]
            texts = body["instances"]
            ids = [rid] if len(texts) == 1 else [f"{rid}/{i}" for i in range(len(texts))]
            self.predictions.append({"request_id": rid, "texts": texts, "protocol": "v1"})
            items = [
                {"id": i, "label": LABELS[self.classify(t)], "label_index": self.classify(t)}
                for i, t in zip(ids, texts, strict=True)
            ]
            answer = {"predictions": items, "request_id": rid}
            if self.full:
                answer["model_version"] = self.version
            return web.json_response(answer)

        async def v2(request: web.Request) -> web.Response:
            body = await request.json()
            rid = body.get("id") or request.headers["x-request-id"]
            texts = body["inputs"][0]["data"]
            self.predictions.append({"request_id": rid, "texts": texts, "protocol": "v2"})
            index = [self.classify(t) for t in texts]
            outputs = [
                {"name": "label", "datatype": "BYTES", "shape": [len(texts)],
                 "data": [LABELS[i] for i in index]},
                {"name": "label_index", "datatype": "INT64", "shape": [len(texts)], "data": index},
            ]  # fmt: skip
            parameters = {"model_version": self.version} if self.full else {"num_labels": 2}
            return web.json_response({"id": rid, "outputs": outputs, "parameters": parameters})

        async def feedback(request: web.Request) -> web.Response:
            body = await request.json()
            if body.get("label") not in (0, 1, "0", "1", *LABELS):
                return web.json_response({"error": "unknown label"}, status=400)
            self.feedback.append(body)
            return web.json_response({"counted": True, "model_version": self.version})

        async def v1_ready(request: web.Request) -> web.Response:
            return web.json_response({"name": request.match_info["name"], "ready": self.ready})

        app = web.Application()
        app.router.add_post(r"/v1/models/{name:[^/:]+}:predict", v1)
        app.router.add_get(r"/v1/models/{name:[^/:]+}", v1_ready)
        app.router.add_post("/v2/models/{name}/infer", v2)
        app.router.add_post("/v1/feedback", feedback)
        return app


@dataclass
class Setup:
    router: Router
    url: str
    arms: dict[str, FakeArm]


@pytest_asyncio.fixture
async def start_router() -> AsyncIterator[Callable[..., Any]]:
    """``await start_router(canary=..., shadow=..., split=Split(...))`` -> Setup."""
    cleanups: list[Any] = []

    async def start(
        *, canary: bool = True, shadow: bool = False, canary_wrong: bool = False,
        split: Split | None = None, label_view: bool = False, **config: Any,
    ) -> Setup:  # fmt: skip
        full = not label_view
        arms = {"stable": FakeArm("1", full=full)}
        if canary:
            arms["canary"] = FakeArm("2", wrong=canary_wrong, full=full)
        if shadow:
            arms["shadow"] = FakeArm("3", wrong=True, full=full)
        if label_view:
            config.setdefault("versions", {role: arm.version for role, arm in arms.items()})
        config.setdefault("response_detail", "label" if label_view else "full")
        for arm in arms.values():
            arm.server = TestServer(arm.app(), host="127.0.0.1")
            await arm.server.start_server()
            arm.base_url = str(arm.server.make_url("")).rstrip("/")
            cleanups.append(arm.server.close)
        port = free_port()
        router_config = RouterConfig(
            stable=arms["stable"].url,
            canary=arms["canary"].url if canary else None,
            shadow=arms["shadow"].url if shadow else None,
            deployment="demo",
            split=split or Split(),
            seed=11,
            **config,
        )
        runner = await serve(router_config, "127.0.0.1", port)
        cleanups.append(runner.cleanup)
        router = runner.app[ROUTER_KEY]
        return Setup(router, f"http://127.0.0.1:{port}", arms)

    yield start
    for cleanup in reversed(cleanups):
        await cleanup()
