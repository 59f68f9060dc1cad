"""Faults found by injection on a real predictor process, each now a clear 4xx (or 404).

Uses the shared tiny predictor (``--max-body-bytes 20000``): KServe's model repository
routes are gone, deep JSON, invisible-only texts and oversize bodies are refused with a
readable answer, and the process counts its own 5xx.
"""

from __future__ import annotations

import socket

import httpx
import pytest

from tests.integration.serving.scrape import scrape, value

pytestmark = pytest.mark.slow


def test_the_model_repository_api_is_disabled_and_the_model_stays(tiny_predictor):
    for method, path in (
        ("POST", "/v2/repository/models/classifier/unload"),
        ("POST", "/v2/repository/models/classifier/load"),
        ("POST", "/v2/repository/index"),
        ("GET", "/v2/repository/index"),
    ):
        r = httpx.request(method, tiny_predictor.url + path, timeout=10)
        assert r.status_code == 404, (path, r.text)
        assert r.json()["code"] == "route_disabled"
    assert httpx.get(f"{tiny_predictor.url}/v2/health/ready", timeout=10).status_code == 200
    r = httpx.post(tiny_predictor.v1, json={"instances": ["still here"]}, timeout=30)
    assert r.status_code == 200, r.text


def test_deeply_nested_json_is_a_400(tiny_predictor):
    deep = b'{"instances": ["ok"], "parameters": {"x": ' + b"[" * 5000 + b"]" * 5000 + b"}}"
    r = httpx.post(
        tiny_predictor.v1, content=deep, headers={"content-type": "application/json"}, timeout=30
    )
    assert r.status_code == 400
    assert r.json()["code"] == "malformed_request" and "nested deeper" in r.json()["error"]


@pytest.mark.parametrize("text", ["\x00\x00\x00", "\u200b\u200c\u200d\ufeff", "\x07 \u2060\t"])
def test_texts_with_nothing_visible_are_refused(tiny_predictor, text: str):
    for url, body in (
        (tiny_predictor.v1, {"instances": ["fine", text]}),
        (
            tiny_predictor.v2,
            {"inputs": [{"name": "text", "shape": [1], "datatype": "BYTES", "data": [text]}]},
        ),
    ):
        r = httpx.post(url, json=body, timeout=30)
        assert r.status_code == 400, r.text
        assert r.json()["code"] == "empty_text" and "no visible text" in r.json()["error"]


def test_a_10_mb_body_gets_a_readable_413_with_or_without_a_length(tiny_predictor):
    big = b'{"instances": ["' + b"x" * 10_000_000 + b'"]}'
    r = httpx.post(
        tiny_predictor.v1, content=big, headers={"content-type": "application/json"}, timeout=60
    )
    assert r.status_code == 413 and r.json()["code"] == "body_too_large"

    def chunks():
        for start in range(0, len(big), 65536):
            yield big[start : start + 65536]

    r = httpx.post(tiny_predictor.v1, content=chunks(), timeout=60)  # chunked: no length
    assert r.status_code == 413 and r.json()["code"] == "body_too_large"


def test_a_raw_socket_client_reads_the_413_before_the_connection_closes(tiny_predictor):
    """What the fault showed: the 413 was sent before the body was read, and the client,
    still sending, got a reset instead of the answer."""
    body = b"x" * 2_000_000
    head = (
        f"POST /v1/models/classifier:predict HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    ).encode()
    with socket.create_connection(("127.0.0.1", tiny_predictor.http_port), timeout=30) as sock:
        sock.sendall(head + body)
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    assert answer.startswith(b"HTTP/1.1 413"), answer[:200]
    assert b"body_too_large" in answer


def test_own_5xx_are_exported_from_zero(tiny_predictor):
    samples = scrape(tiny_predictor.url)
    name = "modeldeploy_server_errors_total"
    assert any(n == name and ("component", "predictor") in labels for n, labels in samples)
    assert value(samples, name, component="predictor") == 0


def test_the_grpc_repository_calls_are_unimplemented(tiny_predictor):
    import grpc
    from kserve.protocol.grpc import grpc_predict_v2_pb2 as pb
    from kserve.protocol.grpc.grpc_predict_v2_pb2_grpc import GRPCInferenceServiceStub

    with grpc.insecure_channel(f"127.0.0.1:{tiny_predictor.grpc_port}") as channel:
        stub = GRPCInferenceServiceStub(channel)
        for call, request in (
            (stub.RepositoryModelUnload, pb.RepositoryModelUnloadRequest(model_name="classifier")),
            (stub.RepositoryModelLoad, pb.RepositoryModelLoadRequest(model_name="classifier")),
        ):
            with pytest.raises(grpc.RpcError) as caught:
                call(request, timeout=10)
            assert caught.value.code() == grpc.StatusCode.UNIMPLEMENTED
        ready = stub.ModelReady(pb.ModelReadyRequest(name="classifier"), timeout=10)
        assert ready.ready
