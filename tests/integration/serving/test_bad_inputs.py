"""Every kind of bad input gets a 4xx with a clear message, is counted, and the server stays up."""

from __future__ import annotations

import json

import httpx
import pytest

from tests.integration.serving.scrape import scrape, value

pytestmark = pytest.mark.slow

V2_OK = {"name": "text", "shape": [1], "datatype": "BYTES", "data": ["fine"]}

# (case id, route, raw body, content type, expected status, expected code, words in message)
CASES = [
    ("empty_text", "v1", b'{"instances": [""]}', "json", 400, "empty_text", "empty"),
    ("whitespace_text", "v1", b'{"instances": ["   "]}', "json", 400, "empty_text", "empty"),
    ("no_instances", "v1", b'{"instances": []}', "json", 400, "empty_text", "at least one"),
    ("number_not_text", "v1", b'{"instances": [42]}', "json", 400, "wrong_type", "int"),
    ("instances_not_list", "v1", b'{"instances": "hi"}', "json", 400, "wrong_type", "list"),
    (
        "missing_instances",
        "v1",
        b'{"texts": ["hi"]}',
        "json",
        400,
        "malformed_request",
        "instances",
    ),
    (
        "too_many_instances",
        "v1",
        b'{"instances": ["a", "b", "c", "d", "e"]}',
        "json",
        400,
        "too_many_instances",
        "limit is 4",
    ),
    (
        "over_long_text",
        "v1",
        ('{"instances": ["' + "word " * 500 + '"]}').encode(),
        "json",
        400,
        "text_too_long",
        "limit is 2000",
    ),
    ("invalid_utf8", "v1", b'{"instances": ["caf\xc3\x28"]}', "json", 400, "invalid_utf8", "UTF-8"),
    (
        "invalid_utf8_no_content_type",
        "v1",
        b'{"instances": ["\xff\xfe"]}',
        None,
        400,
        "invalid_utf8",
        "UTF-8",
    ),
    ("not_json", "v1", b"instances=hello", None, 400, "malformed_request", "JSON"),
    (
        "oversize_body",
        "v1",
        ('{"instances": ["' + "x" * 30000 + '"]}').encode(),
        "json",
        413,
        "body_too_large",
        "20000",
    ),
    (
        "v2_wrong_datatype",
        "v2",
        b'{"inputs": [{"name": "text", "shape": [1], "datatype": "INT32", "data": [1]}]}',
        "json",
        400,
        "wrong_type",
        "BYTES",
    ),
    (
        "v2_empty_text",
        "v2",
        b'{"inputs": [{"name": "text", "shape": [1], "datatype": "BYTES", "data": [""]}]}',
        "json",
        400,
        "empty_text",
        "empty",
    ),
    (
        "v2_two_inputs",
        "v2",
        json.dumps({"inputs": [V2_OK, V2_OK]}).encode(),
        "json",
        400,
        "malformed_request",
        "exactly one",
    ),
]


@pytest.mark.parametrize(
    ("route", "body", "ctype", "status", "code", "words"),
    [c[1:] for c in CASES],
    ids=[c[0] for c in CASES],
)
def test_bad_input_is_a_clear_4xx_and_counted(
    tiny_predictor, route, body, ctype, status, code, words
):
    before = value(scrape(tiny_predictor.url), "modeldeploy_requests_total", outcome="bad_input")
    headers = {"content-type": "application/json"} if ctype == "json" else {}
    url = tiny_predictor.v1 if route == "v1" else tiny_predictor.v2
    r = httpx.post(url, content=body, headers=headers, timeout=30)
    assert r.status_code == status, r.text
    payload = r.json()
    assert payload["code"] == code, payload
    assert words.lower() in payload["error"].lower(), payload
    after = value(scrape(tiny_predictor.url), "modeldeploy_requests_total", outcome="bad_input")
    assert after == before + 1
    # ... and the server still answers a good request.
    ok = httpx.post(tiny_predictor.v1, json={"instances": ["still alive?"]}, timeout=30)
    assert ok.status_code == 200


def test_over_long_input_within_limits_is_truncated_and_reported(tiny_predictor):
    before = value(scrape(tiny_predictor.url), "modeldeploy_truncated_inputs_total")
    r = httpx.post(tiny_predictor.v1, json={"instances": ["good " * 200, "short one"]}, timeout=30)
    assert r.status_code == 200, r.text
    first, second = r.json()["predictions"]
    assert first["truncated"] is True and first["tokens"] == 64
    assert second["truncated"] is False and second["tokens"] < 64
    assert r.json()["truncation"] == {"max_length": 64, "mode": "truncate", "max_chars": 2000}
    assert value(scrape(tiny_predictor.url), "modeldeploy_truncated_inputs_total") == before + 1
