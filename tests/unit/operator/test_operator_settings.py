"""Operator settings: parsed once from a given environment; MLflow's retries bounded."""

from __future__ import annotations

import pytest

from modeldeploy.operator.settings import (
    OperatorSettings,
    apply_mlflow_client_env,
    bound_mlflow_client_env,
)


def test_mlflow_retries_are_bounded_by_default_and_overridable() -> None:
    env: dict[str, str] = {}
    apply_mlflow_client_env(OperatorSettings.from_env(env).registry, env)
    assert env == {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "2", "MLFLOW_HTTP_REQUEST_TIMEOUT": "10"}
    given = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0", "MLFLOW_HTTP_REQUEST_TIMEOUT": "3"}
    env = dict(given)
    apply_mlflow_client_env(OperatorSettings.from_env(env).registry, env)
    assert env == given


def test_mlflow_reads_the_bound_the_operator_sets(monkeypatch: pytest.MonkeyPatch) -> None:
    from mlflow.environment_variables import (
        MLFLOW_HTTP_REQUEST_MAX_RETRIES,
        MLFLOW_HTTP_REQUEST_TIMEOUT,
    )

    monkeypatch.delenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", raising=False)
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "4")
    bound_mlflow_client_env()  # local mode: fills in what is not set
    assert MLFLOW_HTTP_REQUEST_MAX_RETRIES.get() == 2
    assert MLFLOW_HTTP_REQUEST_TIMEOUT.get() == 4


def test_peering_lifetime() -> None:
    env = {"MODELDEPLOY_PEERING_LIFETIME_SECONDS": "7"}
    assert OperatorSettings.from_env(env).peering.lifetime_seconds == 7
    assert OperatorSettings.from_env({}).peering.lifetime_seconds == 60  # kopf's default
