"""The predictor's ASGI guard, driven directly: own 5xx counted, repository routes 404,
oversize bodies drained before the 413, deep JSON refused."""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
import pytest
from prometheus_client import CollectorRegistry

from modeldeploy.serving.errors import EmptyText, MalformedRequest, Overloaded
from modeldeploy.serving.metrics import ArmMetrics
from modeldeploy.serving.middleware import InferenceGuard, check_body


def run(
    app: Any,
    path: str,
    chunks: list[bytes],
    method: str = "POST",
    length: int | None = None,
    model: Any = None,
) -> tuple[list[dict], int, CollectorRegistry]:
    registry = CollectorRegistry()
    metrics = ArmMetrics("d", "1", "stable", ["neg", "pos"], registry=registry)
    guard = InferenceGuard(app, metrics, max_body_bytes=100, registry=registry, model=model)
    sent: list[dict] = []
    pending = [
        {"type": "http.request", "body": c, "more_body": i < len(chunks) - 1}
        for i, c in enumerate(chunks)
    ]
    headers = [] if length is None else [(b"content-length", str(length).encode())]
    scope = {"type": "http", "path": path, "method": method, "headers": headers}

    async def receive() -> dict:
        return pending.pop(0) if pending else {"type": "http.disconnect"}

    async def send(message: dict) -> None:
        sent.append(message)

    asyncio.run(guard(scope, receive, send))
    return sent, len(pending), registry


def errors(registry: CollectorRegistry, status: str) -> float | None:
    return registry.get_sample_value(
        "modeldeploy_server_errors_total",
        {"deployment": "d", "component": "predictor", "status": status},
    )


def answering(status: int):
    async def app(_scope, receive, send) -> None:
        await receive()
        await send({"type": "http.response.start", "status": status, "headers": []})
        await send({"type": "http.response.body", "body": b"{}"})

    return app


@pytest.mark.parametrize("path", ["/v1/models/m:predict", "/v2/health/ready", "/metrics"])
def test_own_5xx_are_counted_on_every_route(path: str):
    _, _, registry = run(answering(500), path, [b'{"instances": ["a"]}'])
    assert errors(registry, "500") == 1
    _, _, registry = run(answering(200), path, [b'{"instances": ["a"]}'])
    assert errors(registry, "500") == 0


@pytest.mark.parametrize(
    "path", ["/v2/repository/models/m/unload", "/v2/repository/models/m/load", "/v2/repository"]
)
def test_repository_routes_never_reach_kserve(path: str):
    sent, _, _ = run(answering(200), path, [b""])
    assert sent[0]["status"] == 404
    assert orjson.loads(sent[1]["body"])["code"] == "route_disabled"


def test_an_oversize_body_is_read_to_its_end_before_the_413():
    chunks = [b"x" * 60] * 50  # 3000 bytes against a limit of 100, streamed
    sent, left, _ = run(answering(200), "/v1/models/m:predict", chunks)
    assert left == 0  # every chunk was taken off the socket
    assert sent[0]["status"] == 413
    sent, left, _ = run(answering(200), "/v1/models/m:predict", chunks, length=3000)
    assert left == 0 and sent[0]["status"] == 413


def test_json_deeper_than_the_limit_is_malformed():
    check_body(b'{"a": ' + b"[" * 60 + b"]" * 60 + b"}", {})
    with pytest.raises(MalformedRequest, match="nested deeper"):
        check_body(b'{"a": ' + b"[" * 70 + b"]" * 70 + b"}", {})


def test_json_depth_at_and_past_the_limit_and_brackets_inside_strings():
    """The bracket count that skips the scan is exact at the limit: 64 deep passes, 65
    fails, and brackets in strings count for the skip but not for the depth."""
    from modeldeploy.serving.router.responses import MAX_JSON_DEPTH, json_too_deep

    assert not json_too_deep(b"[" * MAX_JSON_DEPTH + b"]" * MAX_JSON_DEPTH)
    assert json_too_deep(b"[" * (MAX_JSON_DEPTH + 1) + b"]" * (MAX_JSON_DEPTH + 1))
    assert json_too_deep(b"{" + b'"a":[' * MAX_JSON_DEPTH + b"1" + b"]" * MAX_JSON_DEPTH + b"}")
    in_strings = b'{"instances": ["' + b"[" * 500 + b'", "' + b"{" * 500 + b'"]}'
    assert not json_too_deep(in_strings)
    assert not json_too_deep(b'{"instances": ["a short sentence"]}')


class FakeModel:
    """Answers like TextClassifier through kserve's ``Model.__call__``: (body, headers)."""

    name = "m"

    def __init__(self, fail: BaseException | None = None, ready: bool = True) -> None:
        self.fail, self.ready = fail, ready
        self.calls: list[tuple[Any, dict[str, str]]] = []

    async def __call__(self, payload: Any, headers: dict[str, str]) -> Any:
        self.calls.append((payload, headers))
        if self.fail is not None:
            raise self.fail
        return {"predictions": [{"label": "pos"}]}, {"x-request-id": "r-1"}


def never(_scope, _receive, _send):
    raise AssertionError("the lean route must not reach kserve's app")


def test_the_lean_v1_route_calls_the_model_and_answers_as_kserve_would():
    model = FakeModel()
    sent, _, registry = run(never, "/v1/models/m:predict", [b'{"instances": ["a"]}'], model=model)
    assert model.calls[0][0] == {"instances": ["a"]}  # parsed once, by the guard
    start, body = sent
    assert start["status"] == 200 and orjson.loads(body["body"]) == {
        "predictions": [{"label": "pos"}]
    }
    headers = dict(start["headers"])
    assert headers[b"x-request-id"] == b"r-1" and headers[b"content-type"] == b"application/json"
    assert headers[b"content-length"] == str(len(body["body"])).encode()
    ok = {"deployment": "d", "model_version": "1", "role": "stable"}
    assert registry.get_sample_value("modeldeploy_requests_total", {**ok, "outcome": "ok"}) == 1


@pytest.mark.parametrize(
    ("fail", "status", "body"),
    [
        (Overloaded("queue full"), 503, {"error": "queue full", "code": "overloaded"}),
        (EmptyText("text 0 is empty"), 400, {"error": "text 0 is empty", "code": "empty_text"}),
        (RuntimeError("boom"), 500, {"error": "RuntimeError : boom"}),  # kserve's generic form
    ],
)
def test_the_lean_route_renders_errors_as_the_apps_handlers_do(fail, status, body):
    sent, _, registry = run(
        never, "/v1/models/m:predict", [b'{"instances": ["a"]}'], model=FakeModel(fail)
    )
    assert sent[0]["status"] == status and orjson.loads(sent[1]["body"]) == body
    assert (dict(sent[0]["headers"]).get(b"retry-after") == b"1") == (status == 503)
    assert errors(registry, "500") == (1 if status == 500 else 0)


@pytest.mark.parametrize(
    ("path", "model"),
    [
        ("/v1/models/other:predict", FakeModel()),  # another name: kserve answers 404
        ("/v2/models/m/infer", FakeModel()),  # v2 keeps kserve's decoding
        ("/v1/models/m:predict", FakeModel(ready=False)),  # kserve answers not ready
    ],
)
def test_everything_else_goes_through_kserve(path, model):
    sent, _, _ = run(answering(200), path, [b'{"instances": ["a"]}'], model=model)
    assert sent[0]["status"] == 200 and not model.calls


def test_each_registry_gets_a_counter_of_its_own_even_at_a_reused_address():
    """The counter cache once keyed registries by ``id()``: a registry created where a
    collected one had lived got the dead one's counter, and its 5xx went uncounted."""
    from modeldeploy.serving.router.responses import server_errors_counter

    seen = set()
    for _ in range(20):
        registry = CollectorRegistry()
        server_errors_counter(registry).labels("d", "predictor", "500").inc()
        assert errors(registry, "500") == 1
        seen.add(id(registry))
        del registry  # freed at once (no cycle): the next one may take its address
    assert len(seen) < 20  # addresses were reused, which is what the old cache mishandled
