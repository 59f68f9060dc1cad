"""Manifest rules: every published file is hashed, and any difference names the file."""

from __future__ import annotations

from pathlib import Path

import pytest

from modeldeploy.registry import manifest
from modeldeploy.registry.base import IntegrityError


def test_manifest_covers_every_file_and_round_trips(fake_checkpoint: Path) -> None:
    built = manifest.build_manifest(fake_checkpoint)
    assert set(built) == {
        "config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json",
        "labels.json", "metrics.json",
    }  # fmt: skip
    assert manifest.from_json(manifest.to_json(built)) == built
    manifest.verify(fake_checkpoint, built)  # an untouched copy passes


def test_same_files_give_the_same_manifest_hash(fake_checkpoint: Path) -> None:
    a = manifest.manifest_sha256(manifest.build_manifest(fake_checkpoint))
    b = manifest.manifest_sha256(manifest.build_manifest(fake_checkpoint))
    assert a == b and len(a) == 64


@pytest.mark.parametrize(
    ("damage", "named", "problem"),
    [
        (lambda d: (d / "tokenizer.json").unlink(), "tokenizer.json", "missing"),
        (
            lambda d: (d / "model.safetensors").write_bytes(b"\x00" * 10),
            "model.safetensors",
            "size",
        ),
        (
            lambda d: (d / "labels.json").write_text('{"0": "positive", "1": "negative"}'),
            "labels.json",
            "sha256",
        ),
        (
            lambda d: (d / "pytorch_model.bin").write_bytes(b"pickle"),
            "pytorch_model.bin",
            "not in the manifest",
        ),
    ],
    ids=["missing-file", "truncated-file", "same-size-altered-file", "smuggled-file"],
)
def test_verify_refuses_damage_naming_the_file(fake_checkpoint: Path, damage, named, problem):
    built = manifest.build_manifest(fake_checkpoint)
    damage(fake_checkpoint)
    with pytest.raises(IntegrityError) as err:
        manifest.verify(fake_checkpoint, built)
    assert err.value.path == named
    assert problem in str(err.value) and named in str(err.value)


@pytest.mark.parametrize("text", ["not json", '{"version": 99, "files": {}}', '{"version": 1}'])
def test_unreadable_manifest_tag_is_an_integrity_error(text: str) -> None:
    with pytest.raises(IntegrityError, match="manifest"):
        manifest.from_json(text)


def test_empty_manifest_verifies_nothing_so_it_is_refused(tmp_path: Path) -> None:
    with pytest.raises(IntegrityError, match="no files"):
        manifest.verify(tmp_path, {})


def test_seal_writes_the_manifest_into_the_directory_and_the_cli_reports_its_digest(
    tmp_path, capsys
):
    from modeldeploy.cli import main
    from modeldeploy.registry import manifest as m

    root = tmp_path / "ckpt"
    root.mkdir()
    (root / "config.json").write_text("{}")
    (root / "model.safetensors").write_bytes(b"w" * 10)
    digest = m.manifest_sha256(m.build_manifest(root))
    assert main(["registry", "seal", str(root)]) == 0
    assert m.read_seal(root) == m.build_manifest(root)
    assert digest in capsys.readouterr().out
    assert main(["registry", "seal", str(tmp_path / "missing")]) == 1
