"""kubeapi.load_configuration: the one kube-config loader (operator, kopf login, CLI)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from modeldeploy.operator import kubeapi


def kubeconfig(path: Path, server: str, token: str) -> str:
    path.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": "c", "cluster": {"server": server}}],
                "users": [{"name": "u", "user": {"token": token}}],
                "contexts": [{"name": "x", "context": {"cluster": "c", "user": "u"}}],
                "current-context": "x",
            }
        )
    )
    return str(path)


@pytest.fixture
def outside_a_pod(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    return monkeypatch


def test_kubeconfig_is_read_at_call_time_and_a_given_file_wins(
    outside_a_pod: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    env_file = kubeconfig(tmp_path / "env", "http://127.0.0.1:1", "from-env")
    given = kubeconfig(tmp_path / "given", "http://127.0.0.1:2", "given")
    outside_a_pod.setenv("KUBECONFIG", env_file)
    assert kubeapi.load_configuration().host == "http://127.0.0.1:1"
    config = kubeapi.load_configuration(given)
    assert config.host == "http://127.0.0.1:2"
    info = kubeapi.connection_info(config)  # kopf logs in where our client goes
    assert (info.server, info.token, info.scheme) == ("http://127.0.0.1:2", "given", "Bearer")


def test_in_a_pod_the_service_account_comes_first(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from kubernetes.config import incluster_config

    monkeypatch.setenv("KUBECONFIG", kubeconfig(tmp_path / "k", "http://127.0.0.1:1", "t"))
    monkeypatch.setenv("KUBERNETES_SERVICE_HOST", "10.0.0.1")
    monkeypatch.setenv("KUBERNETES_SERVICE_PORT", "443")
    (tmp_path / "token").write_text("sa-token")
    (tmp_path / "ca.crt").write_text("not checked here")
    monkeypatch.setattr(incluster_config, "SERVICE_TOKEN_FILENAME", str(tmp_path / "token"))
    monkeypatch.setattr(incluster_config, "SERVICE_CERT_FILENAME", str(tmp_path / "ca.crt"))
    config = kubeapi.load_configuration()
    assert config.host == "https://10.0.0.1:443"
    assert kubeapi.connection_info(config).token == "sa-token"
    # Without a service-account token, the kubeconfig is next.
    monkeypatch.setattr(incluster_config, "SERVICE_TOKEN_FILENAME", str(tmp_path / "none"))
    assert kubeapi.load_configuration().host == "http://127.0.0.1:1"


def test_no_configuration_at_all_is_a_clear_error(
    outside_a_pod: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    outside_a_pod.setenv("KUBECONFIG", str(tmp_path / "missing"))
    with pytest.raises(kubeapi.KubeError, match="no Kubernetes configuration found"):
        kubeapi.load_configuration()
