"""``modeldeploy registry ...`` against the real server: tables, and exit codes scripts use.

The commands are run through the same dispatch as ``modeldeploy.cli.main`` (handler,
CommandError -> 1, argparse usage -> 2) with only this area's subcommands registered,
so another area's CLI cannot break these tests.
"""

from __future__ import annotations

import argparse

import pytest

from modeldeploy.cli import CommandError
from modeldeploy.registry import cli as registry_cli

pytestmark = pytest.mark.slow


def run(argv: list[str], capsys) -> tuple[int, str, str]:
    parser = argparse.ArgumentParser(prog="modeldeploy")
    registry_cli.register(parser.add_subparsers(dest="command"))
    try:
        args = parser.parse_args(argv)
        code = int(args.handler(args) or 0)
    except CommandError as exc:
        print(f"error: {exc}")
        code = 1
    except SystemExit as exc:
        code = int(exc.code or 0)
    out = capsys.readouterr()
    return code, out.out, out.err


def test_cli_publish_show_promote_reject_fetch(
    mlflow_server, tiny_checkpoint, model_name, checkpoint_copy, tmp_path, capsys
):
    uri = ["--registry-uri", mlflow_server.url]
    code, out, _ = run(
        [
            "registry",
            "publish",
            str(tiny_checkpoint),
            "--model",
            model_name,
            "--alias",
            "champion",
            *uri,
        ],
        capsys,
    )
    assert code == 0 and f"published {model_name} version 1 with alias champion" in out
    code, out, _ = run(
        [
            "registry",
            "publish",
            str(tiny_checkpoint),
            "--model",
            model_name,
            "--alias",
            "challenger",
            *uri,
        ],
        capsys,
    )
    assert code == 0 and "version 2" in out

    code, out, _ = run(["registry", "list", *uri], capsys)
    assert code == 0 and out.splitlines()[0].split() == ["MODEL", "ALIASES", "UPDATED"]
    assert any(
        line.startswith(model_name) and "challenger=2, champion=1" in line
        for line in out.splitlines()
    )

    code, out, _ = run(
        ["registry", "reject", model_name, "2", "--reason", "p99 80ms", *uri], capsys
    )
    assert code == 0 and "rejected" in out and "alias challenger removed" in out
    code, out, _ = run(
        ["registry", "reject", model_name, "2", "--reason", "p99 80ms", *uri], capsys
    )
    assert code == 0 and "nothing changed" in out
    code, out, _ = run(["registry", "reject", model_name, "1", "--reason", "x", *uri], capsys)
    assert code == 1 and "champion" in out  # rejecting the champion is refused

    code, out, _ = run(
        ["registry", "promote", model_name, "2", "--reason", "override", *uri], capsys
    )
    assert code == 0 and "alias champion -> version 2" in out

    code, out, _ = run(["registry", "show", model_name, *uri], capsys)
    rows = {line.split()[0]: line for line in out.splitlines()[2:]}
    assert code == 0 and "VERSION" in out.splitlines()[1]
    assert "champion" in rows["2"] and "promoted" in rows["2"] and "bert" in rows["2"]
    code, out, _ = run(["registry", "show", model_name, "2", *uri], capsys)
    assert code == 0 and "modeldeploy.manifest" in out and "modeldeploy.reason" in out

    code, out, _ = run(
        ["registry", "fetch", model_name, "champion", "--cache-dir", str(tmp_path / "cache"), *uri],
        capsys,
    )
    assert code == 0 and "version 2 verified at" in out

    (checkpoint_copy / "model.pt").write_bytes(b"pickle")
    code, out, _ = run(
        ["registry", "publish", str(checkpoint_copy), "--model", model_name, *uri], capsys
    )
    assert code == 1 and "model.pt" in out and "nothing was registered" in out


def test_cli_exit_codes_for_failures_and_usage(mlflow_server, capsys, monkeypatch):
    code, out, _ = run(
        ["registry", "show", "no-such-model", "--registry-uri", mlflow_server.url], capsys
    )
    assert code == 1 and "no-such-model" in out
    code, out, _ = run(["registry", "list", "--registry-uri", "http://127.0.0.1:9"], capsys)
    assert code == 1 and "registry unavailable" in out
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    code, out, _ = run(["registry", "list", "--registry-uri", ""], capsys)
    assert code == 1 and "MLFLOW_TRACKING_URI" in out
    code, _, err = run(["registry", "promote", "m", "1"], capsys)  # --reason is required
    assert code == 2 and "--reason" in err
    monkeypatch.delenv("MODELDEPLOY_WEBHOOK_SECRET", raising=False)
    code, out, _ = run(
        [
            "registry",
            "subscribe",
            "--url",
            "http://127.0.0.1:1/x",
            "--registry-uri",
            mlflow_server.url,
        ],
        capsys,
    )
    assert code == 1 and "MODELDEPLOY_WEBHOOK_SECRET" in out
