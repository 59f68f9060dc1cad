"""``modeldeploy serve`` hands its argv to the predictor's own entry point.

The images' entrypoint must start as ``python -m modeldeploy.serving`` does (no other
part's CLI imported, kserve's package __init__ skipped, one malloc arena):
tests/integration/serving/test_image_entrypoint.py checks the real console script.
"""

from __future__ import annotations

import sys
from typing import Any

import pytest

from modeldeploy import cli
from modeldeploy.serving import __main__ as serving_main


@pytest.fixture
def calls(monkeypatch: pytest.MonkeyPatch) -> list[tuple[Any, ...]]:
    seen: list[tuple[Any, ...]] = []

    def fake_main(argv: list[str], prog: str, own_process: bool) -> int:
        seen.append((argv, prog, own_process))
        return 0

    monkeypatch.setattr(serving_main, "main", fake_main)
    return seen


def test_a_caller_in_process_is_not_started_again(calls: list[tuple[Any, ...]]) -> None:
    assert cli.main(["serve", "--model-dir", "/m"]) == 0
    assert calls == [(["--model-dir", "/m"], "modeldeploy serve", False)]


def test_the_process_itself_may_be_started_again(
    calls: list[tuple[Any, ...]], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sys, "argv", ["modeldeploy", "serve", "--model-dir", "/m"])
    assert cli.main() == 0
    assert calls == [(["--model-dir", "/m"], "modeldeploy serve", True)]


def test_help_stays_with_the_product_parser(
    calls: list[tuple[Any, ...]], capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        cli.main(["serve", "--help"])
    assert exited.value.code == 0 and calls == []
    assert "usage: modeldeploy serve" in capsys.readouterr().out


def test_without_the_serving_stack_serve_is_the_parsers_to_refuse(
    calls: list[tuple[Any, ...]], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(cli, "_serving_installed", lambda: False)
    monkeypatch.setattr(cli, "COMMAND_MODULES", ("modeldeploy.registry.cli",))
    with pytest.raises(SystemExit) as exited:
        cli.main(["serve", "--model-dir", "/m"])
    assert exited.value.code == 2 and calls == []
