"""The product CLI and ``modeldeploy-dev`` offer separate commands."""

from __future__ import annotations

import argparse

from modeldeploy.cli import build_parser
from modeldeploy.tools import cli as dev_cli


def commands(parser: argparse.ArgumentParser) -> set[str]:
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return set(sub.choices)


def test_dev_commands_are_only_in_modeldeploy_dev() -> None:
    product = commands(build_parser())
    dev = commands(build_parser(dev_cli.COMMAND_MODULES, prog="modeldeploy-dev"))
    assert dev == {"checkpoints", "demo", "bench"}
    assert {"operator", "rollout", "local", "registry", "serve"} <= product
    assert not product & dev


def test_product_parser_has_no_missing_part_note_when_everything_is_installed() -> None:
    assert build_parser().epilog is None


def test_dev_cli_reports_usage_errors_with_exit_code_2(capsys) -> None:
    assert dev_cli.main([]) == 2
    assert "modeldeploy-dev" in capsys.readouterr().out
