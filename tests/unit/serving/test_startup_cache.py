"""The start-up cache: a derived file or verdict is reused only for its exact key, intact.

Pins the rules of ``backends/cache.py`` and of the parity gate's verdict cache: a hit
needs the same key and the same bytes; another key (another artifact, precision, library,
CPU) or any corruption (altered or truncated file, missing or damaged record, tampered
verdict) is a miss, which rebuilds; nothing here asserts a timing.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from modeldeploy.serving.backends import cache, parity
from modeldeploy.serving.backends.base import ParityFailed

KEY = {"kind": "test-graph", "weights": "abc123", "precision": "bf16", "torch": "2.13.0"}


def _built(tmp_path: Path, content: bytes = b"graph bytes " * 1000) -> Path:
    built = tmp_path / "work" / "graph.bin"
    built.parent.mkdir(exist_ok=True)
    built.write_bytes(content)
    return built


@pytest.fixture
def committed(tmp_path: Path) -> Path:
    return cache.commit(_built(tmp_path), tmp_path / "cache" / "graph.bin", KEY)


def test_a_committed_file_is_a_hit_for_its_own_key(committed):
    assert cache.why_unusable(committed, KEY) is None
    assert cache.recorded_sha256(committed) == cache.file_sha256(committed)


def test_a_file_never_built_is_a_miss(tmp_path):
    assert cache.why_unusable(tmp_path / "nothing.bin", KEY) == "not built yet"


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("weights", "another-artifact"),  # a different checkpoint's digest
        ("precision", "fp32"),
        ("torch", "2.14.0"),  # another library version
    ],
)
def test_any_other_key_is_a_miss_that_names_the_difference(committed, field, value):
    reason = cache.why_unusable(committed, {**KEY, field: value})
    assert reason is not None and reason.startswith("built for another key") and field in reason


def test_an_altered_file_is_corrupt(committed):
    data = bytearray(committed.read_bytes())
    data[100] ^= 0x01  # one flipped bit, same size
    committed.write_bytes(bytes(data))
    assert "corrupt" in (cache.why_unusable(committed, KEY) or "")


def test_a_truncated_file_is_corrupt(committed):
    committed.write_bytes(committed.read_bytes()[:-10])
    assert "corrupt" in (cache.why_unusable(committed, KEY) or "")


def test_a_file_without_a_record_is_not_trusted(committed):
    cache.record_path(committed).unlink()
    assert "no record" in (cache.why_unusable(committed, KEY) or "")


def test_a_damaged_record_is_not_trusted(committed):
    cache.record_path(committed).write_text('{"key": ')
    assert "unreadable record" in (cache.why_unusable(committed, KEY) or "")


def test_a_rebuild_replaces_a_corrupt_file_and_is_a_hit_again(committed, tmp_path, caplog):
    committed.write_bytes(b"garbage")
    with caplog.at_level(logging.WARNING):
        assert not cache.usable(committed, KEY, "test graph")
    assert "is not reused: corrupt" in caplog.text  # the reason is logged
    cache.commit(_built(tmp_path, b"rebuilt " * 500), committed, KEY)
    assert cache.usable(committed, KEY, "test graph")
    assert committed.read_bytes() == b"rebuilt " * 500


def test_the_hardware_key_keeps_only_features_that_change_kernels(monkeypatch):
    flags = frozenset({"fpu", "sse2", "avx2", "amx_bf16", "avx512_bf16"})
    monkeypatch.setattr(cache, "cpu_flags", lambda: flags)
    assert cache.hardware_key() == ["amx_bf16", "avx2", "avx512_bf16"]


def test_library_version_is_found_without_importing_the_library():
    assert cache.library_version("pytest") == pytest.__version__
    assert cache.library_version("surely-not-installed-here") is None


# --- parity verdicts -------------------------------------------------------------------


class _Backend:
    """Predicts class 0, except for texts listed in ``wrong`` (then class 1)."""

    def __init__(self, runtime: str, wrong: set[int] | None = None) -> None:
        self.runtime, self.wrong, self.calls = runtime, wrong or set(), 0

    def logits(self, ids: np.ndarray, mask: np.ndarray) -> np.ndarray:
        self.calls += 1
        out = np.tile([1.0, 0.0], (len(ids), 1))
        out[[int(i) in self.wrong for i in ids[:, 0]]] = [0.0, 1.0]
        return out


class _Encoder:
    pad_id = 0

    def encode(self, texts):
        return [SimpleNamespace(ids=[int(t)], truncated=False) for t in texts]


def _held_out() -> tuple[list[str], list[int]]:
    return [str(i) for i in range(1, 201)], [0] * 200


def _key(**changes) -> dict:
    candidate = {"runtime": "onnx", "graph": "sha-of-graph", "onnxruntime": "1.31.1"}
    reference = {"runtime": "torch", "precision": "fp32", "weights": "abc", "torch": "2.13.0"}
    encoder = {"tokenizer": "sha-of-tokenizer", "max_length": 64, "pad_id": 0}
    base = parity.verdict_key(candidate, reference, encoder, "validation file", 0.01)
    return {**base, **changes}


def _check(tmp_path, key, candidate=None, reference=None):
    reference = reference or _Backend("torch")
    report = parity.check(
        candidate or _Backend("onnx"),
        lambda: reference,
        _Encoder(),  # type: ignore[arg-type]
        _held_out,
        0.01,
        cache_file=tmp_path / "model.parity-0.01.json",
        cache_key=key,
    )
    return report, reference


def test_a_verdict_is_reused_for_the_same_key_without_running_the_reference(tmp_path):
    first, reference = _check(tmp_path, _key())
    assert reference.calls > 0
    again, reference = _check(tmp_path, _key())
    assert again == first and reference.calls == 0  # neither data nor reference touched


@pytest.mark.parametrize(
    "change",
    [
        {"candidate": {"runtime": "onnx", "graph": "another-graph", "onnxruntime": "1.31.1"}},
        {"validation": "another validation file"},
        {"cpu": ["a-flag-no-cpu-has"]},  # another machine's kernels (not this one's flags)
        {"tolerance": 0.02},
    ],
)
def test_a_verdict_for_another_key_is_not_reused(tmp_path, change):
    _check(tmp_path, _key())
    _, reference = _check(tmp_path, _key(**change))
    assert reference.calls > 0  # checked again


def test_a_tampered_verdict_is_not_believed(tmp_path):
    # The candidate really loses 10 points: a cached verdict edited to say it did not
    # must not let it start.
    bad = _Backend("onnx", wrong=set(range(1, 21)))
    with pytest.raises(ParityFailed):
        _check(tmp_path, _key(), candidate=bad)
    verdict = tmp_path / "model.parity-0.01.json"
    document = json.loads(verdict.read_text())
    document["report"]["candidate_accuracy"] = document["report"]["reference_accuracy"]
    verdict.write_text(json.dumps(document))
    with pytest.raises(ParityFailed, match="EXCEEDS"):
        _check(tmp_path, _key(), candidate=bad)


def test_an_unreadable_verdict_is_checked_again_and_rewritten(tmp_path):
    verdict = tmp_path / "model.parity-0.01.json"
    verdict.write_text("{not json")
    report, reference = _check(tmp_path, _key())
    assert reference.calls > 0 and report.passed
    assert cache.read_verdict(verdict, _key()) is not None


def test_without_a_key_nothing_is_cached(tmp_path):
    parity.check(
        _Backend("onnx"),
        lambda: _Backend("torch"),
        _Encoder(),  # type: ignore[arg-type]
        _held_out,
        0.01,
        cache_file=tmp_path / "v.json",
    )
    assert not (tmp_path / "v.json").exists()
