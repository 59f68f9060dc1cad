"""A real tritonserver against the Python predictor's contract, side by side.

- inputs: what ``codecs.validate_texts`` refuses with a 400, Triton refuses with a 400 over
  HTTP and INVALID_ARGUMENT over gRPC, with the same message, and it keeps serving;
- load: a version whose files differ from its shipped manifest is not loaded;
- metrics: after a few requests Triton's /metrics carries the ``modeldeploy_*`` series, and
  the analysis' own parser (``operator.metrics.snapshot.collect``) reads an arm from them.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator

import numpy as np
import pytest

from modeldeploy.serving import codecs, metrics
from modeldeploy.serving.errors import BadInput
from modeldeploy.serving.triton import TritonError, TritonServer, classify, export_repository
from modeldeploy.tools.checkpoints import build

pytestmark = pytest.mark.slow

MODEL = "reviews"
VERSION = 4
DEPLOYMENT = "reviews-demo"
BF16_MODEL = "reviews_bf16"
LIMIT = codecs.TruncationPolicy().max_chars

CASES = {
    "invalid_utf8": b"\xff\xfe bad",
    "empty": b"",
    "whitespace": b"  \t ",
    "over_limit": b"x" * (LIMIT + 1),
}


@pytest.fixture(scope="module")
def triton(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TritonServer]:
    root = tmp_path_factory.mktemp("triton-contract")
    checkpoint = build("tiny")
    repo = root / "repo"
    export_repository(checkpoint, repo, MODEL, VERSION)
    export_repository(checkpoint, repo, BF16_MODEL, 1, runtime="torch", precision="bf16")
    export_repository(checkpoint, repo, "tampered", 1)
    (repo / "tampered" / "1" / "labels.json").write_text('{"0": "positive", "1": "negative"}')
    export_repository(checkpoint, repo, "relabelled", 1)
    shutil.copytree(repo / "relabelled" / "1", repo / "relabelled" / "2")
    shutil.copy(
        repo / "relabelled" / "modeldeploy-manifest-1.json",
        repo / "relabelled" / "modeldeploy-manifest-2.json",
    )
    env = {"MODELDEPLOY_DEPLOYMENT": DEPLOYMENT, "MODELDEPLOY_ROLE": "canary"}
    with TritonServer(repo, log_path=root / "tritonserver.log", env=env) as server:
        server.load(MODEL)
        yield server


def _http_refusal(triton: TritonServer, payload: bytes) -> tuple[str, str]:
    import tritonclient.http as httpclient
    from tritonclient.utils import InferenceServerException

    client = httpclient.InferenceServerClient(triton.http_url.removeprefix("http://"))
    try:
        tensor = httpclient.InferInput("TEXT", [1, 1], "BYTES")
        tensor.set_data_from_numpy(np.array([[payload]], dtype=np.object_))
        with pytest.raises(InferenceServerException) as refused:
            client.infer(MODEL, [tensor], model_version=str(VERSION))
    finally:
        client.close()
    return str(refused.value.status()), str(refused.value.message())


# tritonclient.grpc cannot share a process with kserve (NOTES.md), so it runs in a child.
_GRPC = """
import sys, numpy as np, tritonclient.grpc as g
from tritonclient.utils import InferenceServerException
client = g.InferenceServerClient(sys.argv[1])
tensor = g.InferInput("TEXT", [1, 1], "BYTES")
tensor.set_data_from_numpy(np.array([[sys.stdin.buffer.read()]], dtype=np.object_))
try:
    client.infer(sys.argv[2], [tensor], model_version=sys.argv[3])
    print("ACCEPTED")
except InferenceServerException as exc:
    print(exc.status())
"""


def _grpc_status(triton: TritonServer, payload: bytes) -> str:
    done = subprocess.run(
        [sys.executable, "-c", _GRPC, triton.grpc_address, MODEL, str(VERSION)],
        input=payload,
        capture_output=True,
        timeout=120,
        check=True,
    )
    return done.stdout.decode().strip()


@pytest.mark.parametrize("case", sorted(CASES))
def test_refused_like_the_predictor_over_http_and_grpc(triton: TritonServer, case: str) -> None:
    payload = CASES[case]
    with pytest.raises(BadInput) as predictor:
        codecs.validate_texts([payload], max_instances=8, policy=codecs.TruncationPolicy())
    status, message = _http_refusal(triton, payload)
    assert (status, message) == (str(predictor.value.http_status), predictor.value.reason)
    assert _grpc_status(triton, payload) == "StatusCode.INVALID_ARGUMENT"
    assert classify(triton.http_url, MODEL, ["still serving"], version=VERSION).labels


def test_ten_million_characters_are_refused_before_tokenizing(triton: TritonServer) -> None:
    payload = b"a " * 5_000_000
    with pytest.raises(BadInput) as predictor:
        codecs.validate_texts([payload], max_instances=8, policy=codecs.TruncationPolicy())
    started = time.monotonic()
    status, message = _http_refusal(triton, payload)
    elapsed = time.monotonic() - started
    assert (status, message) == ("400", predictor.value.reason)
    # The stall this replaces was an 11 s tokenizer pass; a length check is far below it.
    assert elapsed < 5.0, f"refusal took {elapsed:.1f}s"


def test_accepted_text_at_the_limit_is_scored(triton: TritonServer) -> None:
    text = ("word " * LIMIT)[:LIMIT]
    assert codecs.validate_texts([text], 8, codecs.TruncationPolicy()) == [text]
    result = classify(triton.http_url, MODEL, [text], version=VERSION)
    assert result.probabilities.shape == (1, 2)


def test_a_tampered_version_is_not_loaded(triton: TritonServer) -> None:
    with pytest.raises(TritonError, match=r"tampered/1/labels.json: size or SHA-256 differs"):
        triton.load("tampered")
    assert not triton.model_ready("tampered", 1)


def test_files_copied_under_another_version_number_are_not_loaded(triton: TritonServer) -> None:
    with pytest.raises(TritonError, match="exported as another version"):
        triton.load("relabelled")
    assert not triton.model_ready("relabelled", 2)


def test_metrics_carry_the_series_the_analysis_reads(triton: TritonServer) -> None:
    from prometheus_client.parser import text_string_to_metric_families

    from modeldeploy.operator.metrics.base import AnalysisTarget
    from modeldeploy.operator.metrics.snapshot import collect

    def samples() -> list[tuple[str, dict[str, str], float]]:
        text = urllib.request.urlopen(triton.metrics_url, timeout=10).read().decode()
        return [
            (s.name, dict(s.labels), float(s.value))
            for family in text_string_to_metric_families(text)
            for s in family.samples
        ]

    target = AnalysisTarget(DEPLOYMENT, stable_version="1", canary_version=str(VERSION))
    before = collect(samples(), target).canary
    texts = ["a gripping film", "dull", "fine", "too long and tedious"]
    classify(triton.http_url, MODEL, texts, version=VERSION, batch_size=1)
    _http_refusal(triton, b"")
    after = collect(samples(), target).canary

    assert before is not None and after is not None
    delta = after.minus(before)
    assert delta.requests == {"ok": len(texts), "bad_input": 1, "error": 0}
    assert delta.nan_outputs == 0
    # Triton prints the edges with fewer digits than repr(); equal within the print precision
    edges = sorted(delta.buckets)[:-1]
    assert edges == pytest.approx(list(metrics.latency_buckets()), rel=1e-9)
    assert delta.buckets[float("inf")] == len(texts) + 1
    names = {name for name, _, _ in samples()}
    assert "modeldeploy_predictions_total" in names
    assert "nv_inference_request_summary_us" in names  # --metrics-config summary_latencies


def test_tokenization_failures_and_cpu_seconds_on_triton(triton: TritonServer) -> None:
    """The same reasons as the Python predictor, and CPU time that grows with work."""
    from prometheus_client.parser import text_string_to_metric_families

    from modeldeploy.serving.contract import names

    def read() -> dict[tuple[str, str], float]:
        text = urllib.request.urlopen(triton.metrics_url, timeout=10).read().decode()
        return {
            (s.name, s.labels.get("reason", "")): float(s.value)
            for family in text_string_to_metric_families(text)
            for s in family.samples
            if s.labels.get("model_version") == str(VERSION)
        }

    before = read()
    texts = ["\u0301", "日本語 テキスト ☃☃", " ".join(["word"] * 600), "a fine film"]
    classify(triton.http_url, MODEL, texts, version=VERSION, batch_size=len(texts))
    after = read()
    failures = names.TOKENIZATION_FAILURES
    counted = {
        reason: after[(failures, reason)] - before[(failures, reason)]
        for reason in names.TOKENIZATION_FAILURE_REASONS
    }
    assert counted == {"empty": 1, "over_limit": 1, "unknown_tokens": 1, "error": 0}
    cpu = (names.CPU_SECONDS, "")
    assert before[cpu] > 0  # model load is charged too
    assert after[cpu] > before[cpu]


def test_a_bf16_torch_export_answers_as_the_fp32_onnx_one(triton: TritonServer) -> None:
    """The benchmark compares the bf16 predictor with Triton at bf16 (``precision``): the
    exported torch runtime under ``torch.autocast``, loaded by the real tritonserver."""
    triton.load(BF16_MODEL)
    texts = ["a gripping, beautiful film", "dull and far too long", "fine", "not bad at all"]
    fp32 = classify(triton.http_url, MODEL, texts, version=VERSION)
    bf16 = classify(triton.http_url, BF16_MODEL, texts, version=1)
    assert bf16.probabilities.shape == fp32.probabilities.shape == (len(texts), 2)
    # bf16 keeps 8 bits of mantissa: close to fp32, not equal to it.
    difference = np.abs(bf16.probabilities - fp32.probabilities).max()
    assert 0 < difference < 0.03
    margin = np.abs(fp32.probabilities[:, 1] - fp32.probabilities[:, 0])
    agree = [a == b for a, b, m in zip(bf16.labels, fp32.labels, margin, strict=True) if m > 0.1]
    assert all(agree)
