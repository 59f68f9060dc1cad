"""Accuracy parity: a candidate runtime must match the torch path on held-out data.

The judgement is a pure function of two prediction vectors and the true labels;
the runner feeds both backends the same tokenized validation split. Verdicts are
cached beside the candidate's graph, keyed by everything the judgement depends on
(:func:`verdict_key`: the candidate file's SHA-256, the reference weights, the
validation data, the tokenizer and its limits, the tolerance, the libraries and the CPU
features), and sealed (:mod:`cache`), so a restart does not pay for the check again, but
a verdict is only ever reused for the very judgement it records.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np

from modeldeploy.serving.backends.base import Backend, ParityFailed
from modeldeploy.serving.codecs import TextEncoder, pad_batch

log = logging.getLogger(__name__)

FINITE_CHECK_TEXTS = 8
"""How many parity sentences every predictor scores before it may become ready.

One batch: it is on every start's path (32 sentences in two batches cost 0.16-0.22 s of
CPU in bf16, 8 in one about 0.08 s), and a broken checkpoint (NaN weights, an overflow
that a reduced precision meets on ordinary text) shows on any sentence. Reduced
precisions were also scored on the whole validation split by the parity gate.
"""


class NonFiniteOutputs(RuntimeError):
    """The model gives NaN or infinite logits on known-good sentences: never ready."""


@dataclass(frozen=True)
class ParityReport:
    runtime: str
    n: int
    reference_accuracy: float
    candidate_accuracy: float
    agreement: float
    tolerance: float

    @property
    def drop(self) -> float:
        return self.reference_accuracy - self.candidate_accuracy

    @property
    def passed(self) -> bool:
        return self.drop <= self.tolerance + 1e-12

    def message(self) -> str:
        verdict = "within" if self.passed else "EXCEEDS"
        return (
            f"{self.runtime} accuracy {self.candidate_accuracy:.4f} vs torch "
            f"{self.reference_accuracy:.4f} on {self.n} held-out validation texts: drop "
            f"{self.drop:+.4f} {verdict} the tolerance {self.tolerance:.4f} "
            f"(prediction agreement {self.agreement:.4f})"
        )

    def to_json(self) -> str:
        return json.dumps({**asdict(self), "drop": self.drop, "passed": self.passed}, indent=2)


def judge(
    runtime: str,
    reference: np.ndarray,
    candidate: np.ndarray,
    labels: Sequence[int],
    tolerance: float,
) -> ParityReport:
    """Compare predicted class vectors against the true labels."""
    truth = np.asarray(labels)
    return ParityReport(
        runtime=runtime,
        n=len(truth),
        reference_accuracy=float(np.mean(reference == truth)),
        candidate_accuracy=float(np.mean(candidate == truth)),
        agreement=float(np.mean(reference == candidate)),
        tolerance=tolerance,
    )


def predict_classes(
    backend: Backend, encoder: TextEncoder, texts: Sequence[str], batch_size: int = 64
) -> np.ndarray:
    """Predicted class per text, batched by length the way the server batches."""
    encoded = encoder.encode(texts)
    order = np.argsort([len(e.ids) for e in encoded], kind="stable")
    out = np.zeros(len(texts), dtype=np.int64)
    for start in range(0, len(order), batch_size):
        idx = order[start : start + batch_size]
        ids, mask = pad_batch([encoded[i].ids for i in idx], encoder.pad_id)
        out[idx] = np.argmax(backend.logits(ids, mask), axis=1)
    return out


def verdict_path(graph: Path, tolerance: float) -> Path:
    return graph.with_name(f"{graph.stem}.parity-{tolerance:g}.json")


def verdict_key(
    candidate: Mapping[str, Any],
    reference: Mapping[str, Any],
    encoder: Mapping[str, Any],
    validation_text: str,
    tolerance: float,
) -> dict[str, Any]:
    """Everything a parity verdict depends on (the key it is cached under).

    ``candidate``/``reference`` name each side exactly (runtime, precision, device, the
    SHA-256 of the file that runs, the library versions), ``encoder`` the tokenizer file
    and limits; the rest is the data and the rule: the validation file, the tolerance,
    and the CPU features that select kernels (:func:`cache.hardware_key`).
    """
    from modeldeploy.serving.backends.cache import hardware_key

    return {
        "kind": "parity-verdict",
        "candidate": dict(candidate),
        "reference": dict(reference),
        "encoder": dict(encoder),
        "validation": hashlib.sha256(validation_text.encode()).hexdigest(),
        "tolerance": tolerance,
        "cpu": hardware_key(),
    }


def _cached_report(cache_file: Path, key: Mapping[str, Any]) -> ParityReport | None:
    from modeldeploy.serving.backends.cache import read_verdict

    saved = read_verdict(cache_file, key)
    if saved is None:
        return None
    try:
        return ParityReport(**{f.name: saved[f.name] for f in fields(ParityReport)})
    except (KeyError, TypeError) as exc:
        log.warning("cached parity verdict %s lacks %s; checking again", cache_file, exc)
        return None


def _save_report(cache_file: Path, key: Mapping[str, Any], report: ParityReport) -> None:
    from modeldeploy.serving.backends.cache import write_verdict

    try:
        write_verdict(cache_file, key, asdict(report))
    except OSError as exc:  # a read-only cache costs the next start a check, nothing else
        log.warning("could not cache the parity verdict in %s: %s", cache_file, exc)


def check(
    candidate: Backend,
    reference_factory: Callable[[], Backend],
    encoder: TextEncoder,
    held_out: Callable[[], tuple[Sequence[str], Sequence[int]]],
    tolerance: float,
    cache_file: Path | None = None,
    cache_key: Mapping[str, Any] | None = None,
) -> ParityReport:
    """Return the (cached or fresh) report; raise ParityFailed when the drop is too big.

    A verdict is read from ``cache_file`` only if it was saved under exactly ``cache_key``
    (see :func:`verdict_key`); without a key nothing is cached. ``held_out`` is called only
    when no verdict is cached: a cached start pays neither for reading the held-out
    sentences nor for loading the reference.
    """
    caching = cache_file is not None and cache_key is not None
    report: ParityReport | None = None
    if caching:
        assert cache_file is not None and cache_key is not None
        cached = _cached_report(cache_file, cache_key)
        if cached and cached.runtime == candidate.runtime and cached.tolerance == tolerance:
            report = cached
    if report is None:
        texts, labels = held_out()
        reference = predict_classes(reference_factory(), encoder, texts)
        report = judge(
            candidate.runtime,
            reference,
            predict_classes(candidate, encoder, texts),
            labels,
            tolerance,
        )
        if caching:
            assert cache_file is not None and cache_key is not None
            _save_report(cache_file, cache_key, report)
    if not report.passed:
        raise ParityFailed(f"refusing to serve: {report.message()}")
    return report


def check_finite(
    backend: Backend, encoder: TextEncoder, texts: Sequence[str], batch_size: int = 16
) -> int:
    """Score ``texts`` (the first parity sentences) and raise if any logit is NaN or ±inf.

    Every runtime (torch included) runs this before the predictor reports ready: a NaN
    checkpoint otherwise loads, reports ready, and fails every user request until the
    analysis rolls it back. Returns how many sentences were scored. A backend that offers
    ``single_threaded()`` (torch) runs this on one thread (``TorchBackend.single_threaded``
    says why).
    """
    encoded = encoder.encode(texts)
    with getattr(backend, "single_threaded", contextlib.nullcontext)():
        _check_finite(backend, encoder, encoded, batch_size)
    return len(encoded)


def _check_finite(
    backend: Backend, encoder: TextEncoder, encoded: Sequence[Any], batch_size: int
) -> None:
    for start in range(0, len(encoded), batch_size):
        chunk = encoded[start : start + batch_size]
        ids, mask = pad_batch([e.ids for e in chunk], encoder.pad_id)
        logits = np.asarray(backend.logits(ids, mask))
        bad = ~np.isfinite(logits).all(axis=1)
        if bad.any():
            first = start + int(np.argmax(bad))
            kind = "NaN" if np.isnan(logits[bad]).any() else "infinite"
            raise NonFiniteOutputs(
                f"refusing to serve: {backend.runtime} gives {kind} logits on "
                f"{int(bad.sum())} of {len(chunk)} parity sentences (first: #{first}); "
                "the weights are broken"
            )
