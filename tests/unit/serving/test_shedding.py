"""A shed request is answered 503 with Retry-After, and counted per arm."""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.testclient import TestClient
from prometheus_client import CollectorRegistry

from modeldeploy.serving import errors
from modeldeploy.serving.contract import names
from modeldeploy.serving.model import shed_counter


def test_overloaded_is_a_503_with_retry_after():
    app = FastAPI()
    errors.install(app)

    @app.post("/predict")
    async def predict() -> None:
        raise errors.Overloaded("inference queue is full (128 items waiting); retry shortly")

    response = TestClient(app).post("/predict")
    assert response.status_code == 503 and response.headers["retry-after"] == "1"
    assert response.json()["code"] == "overloaded"


def test_shed_requests_are_counted_under_the_contract_name():
    registry = CollectorRegistry()
    shed_counter(registry).labels("d", "3", "canary").inc()
    assert shed_counter(registry) is shed_counter(registry)  # one collector per registry
    labels = {"deployment": "d", "model_version": "3", "role": "canary"}
    assert registry.get_sample_value(names.SHED_REQUESTS, labels) == 1
