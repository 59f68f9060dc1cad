"""The import contracts in pyproject.toml ([tool.importlinter]) hold; `make test` checks them."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

from tests.unit.layout.probe import ROOT

LINT_IMPORTS = Path(sys.executable).parent / "lint-imports"


def test_every_import_contract_is_kept() -> None:
    assert LINT_IMPORTS.is_file(), f"{LINT_IMPORTS} missing: run `make setup`"
    proc = subprocess.run(
        [str(LINT_IMPORTS), "--no-cache"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    contracts = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]
    expected = len(contracts["contracts"])
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert f"Contracts: {expected} kept, 0 broken." in proc.stdout
