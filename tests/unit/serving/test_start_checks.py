"""Manifest checks before serving, the finite-output check and the start-failure line."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from modeldeploy.registry import manifest
from modeldeploy.serving.__main__ import EXIT_CODES, failure_kind, failure_line
from modeldeploy.serving.backends.base import ParityFailed
from modeldeploy.serving.backends.parity import NonFiniteOutputs, check_finite
from modeldeploy.serving.loading import (
    IntegrityFailed,
    LoadError,
    RegistryFailed,
    verify_checkpoint,
)


@pytest.fixture
def checkpoint_dir(tmp_path: Path) -> Path:
    root = tmp_path / "ckpt"
    root.mkdir()
    (root / "config.json").write_text('{"model_type": "bert"}')
    (root / "model.safetensors").write_bytes(b"\x00" * 64)
    return root


def test_the_seal_is_not_part_of_the_manifest(checkpoint_dir: Path):
    before = manifest.manifest_sha256(manifest.build_manifest(checkpoint_dir))
    manifest.seal(checkpoint_dir)
    assert manifest.SEAL_FILE not in manifest.list_files(checkpoint_dir)
    assert manifest.manifest_sha256(manifest.build_manifest(checkpoint_dir)) == before
    assert verify_checkpoint(checkpoint_dir, None, from_registry=False) == before


def test_a_sealed_dir_with_an_altered_file_is_refused_naming_it(checkpoint_dir: Path):
    manifest.seal(checkpoint_dir)
    (checkpoint_dir / "model.safetensors").write_bytes(b"\x01" * 64)
    with pytest.raises(IntegrityFailed, match=r"model\.safetensors"):
        verify_checkpoint(checkpoint_dir, None, from_registry=False)


def test_a_smuggled_file_in_a_sealed_dir_is_refused(checkpoint_dir: Path):
    manifest.seal(checkpoint_dir)
    (checkpoint_dir / "pytorch_model.bin").write_bytes(b"pickle")
    with pytest.raises(IntegrityFailed, match=r"pytorch_model\.bin"):
        verify_checkpoint(checkpoint_dir, None, from_registry=False)


def test_an_unsealed_dir_needs_the_expected_digest(checkpoint_dir: Path):
    with pytest.raises(IntegrityFailed, match="no manifest"):
        verify_checkpoint(checkpoint_dir, None, from_registry=False)
    digest = manifest.manifest_sha256(manifest.build_manifest(checkpoint_dir))
    assert verify_checkpoint(checkpoint_dir, digest.upper(), from_registry=False) == digest
    with pytest.raises(IntegrityFailed, match="wrong checkpoint"):
        verify_checkpoint(checkpoint_dir, "0" * 64, from_registry=False)


def test_a_sealed_dir_must_also_match_the_expected_digest(checkpoint_dir: Path, tmp_path: Path):
    manifest.seal(checkpoint_dir)
    digest = manifest.manifest_sha256(manifest.read_seal(checkpoint_dir) or {})
    assert verify_checkpoint(checkpoint_dir, digest, from_registry=False) == digest
    with pytest.raises(IntegrityFailed, match="wrong checkpoint"):
        verify_checkpoint(checkpoint_dir, "f" * 64, from_registry=False)
    copy = Path(shutil.copytree(checkpoint_dir, tmp_path / "copy"))
    assert verify_checkpoint(copy, None, from_registry=False) == digest


class _Encoded:
    def __init__(self, n: int) -> None:
        self.ids = list(range(1, n + 1))


class _Encoder:
    pad_id = 0

    def encode(self, texts):
        return [_Encoded(len(t.split())) for t in texts]


class _Backend:
    runtime = "fake"

    def __init__(self, poison: float | None = None, at: int = -1) -> None:
        self.poison, self.at, self.seen = poison, at, 0

    def logits(self, ids: np.ndarray, _mask: np.ndarray) -> np.ndarray:
        out = np.zeros((len(ids), 2), dtype=np.float32)
        for row in range(len(ids)):
            if self.seen + row == self.at:
                out[row, 1] = self.poison
        self.seen += len(ids)
        return out


def test_finite_outputs_pass():
    assert check_finite(_Backend(), _Encoder(), ["a b", "c"] * 20) == 40  # type: ignore[arg-type]


@pytest.mark.parametrize(("value", "kind"), [(float("nan"), "NaN"), (float("inf"), "infinite")])
def test_one_non_finite_logit_refuses_the_model(value: float, kind: str):
    backend = _Backend(value, at=21)
    with pytest.raises(NonFiniteOutputs, match=f"{kind} logits on 1 of 16 .*first: #21"):
        check_finite(backend, _Encoder(), ["a b"] * 40)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("exc", "kind"),
    [
        (IntegrityFailed("x"), "integrity"),
        (RegistryFailed("x"), "registry"),
        (LoadError("x"), "load"),
        (ParityFailed("x"), "parity"),
        (NonFiniteOutputs("x"), "nan"),
        (KeyError("x"), "internal"),
    ],
)
def test_each_failure_has_its_kind_and_a_distinct_exit_code(exc: Exception, kind: str):
    assert failure_kind(exc) == kind
    assert len(set(EXIT_CODES.values())) == len(EXIT_CODES)
    assert 2 not in EXIT_CODES.values()  # argparse's usage code stays its own


def test_the_failure_line_is_one_line_without_credentials():
    exc = LoadError("cannot reach\nhttp://alice:s3cret@host:5000/x\n  retry later")
    line = failure_line("registry", exc)
    assert "\n" not in line and "s3cret" not in line
    assert line == "error: registry: cannot reach http://host:5000/x retry later"
    assert failure_line("internal", KeyError("k")) == "error: internal: KeyError: 'k'"
