"""A real ``mlflow server`` on sqlite in a temporary directory.

Webhooks are enabled the way MLflow 3.17 needs them on loopback: http allowed,
private IPs allowed, and a fixed Fernet key for the stored webhook secrets. The
job runner is off (it starts ten processes and 2 GB we do not need).
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

from tests.support.processes import ManagedProcess, free_port, http_ok, start_process

# A fixed, test-only Fernet key (32 url-safe base64 bytes), so a restarted server can
# still decrypt the webhook secrets it stored before.
TEST_WEBHOOK_ENCRYPTION_KEY = "bW9kZWxkZXBsb3ktdGVzdC1vbmx5LWZlcm5ldC1rZXk="


@dataclass
class MlflowServer:
    """A running (or stopped) MLflow server whose state survives restarts."""

    root: Path
    port: int
    process: ManagedProcess | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 90.0) -> MlflowServer:
        mlflow_bin = Path(sys.executable).with_name("mlflow")
        argv = [
            str(mlflow_bin),
            "server",
            "--backend-store-uri",
            f"sqlite:///{self.root / 'mlflow.db'}",
            "--default-artifact-root",
            str(self.root / "artifacts"),
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--workers",
            "1",
        ]
        env = {
            "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false",
            "MLFLOW_WEBHOOK_ALLOWED_SCHEMES": "http,https",
            "MLFLOW_WEBHOOK_ALLOW_PRIVATE_IPS": "true",
            "MLFLOW_WEBHOOK_SECRET_ENCRYPTION_KEY": TEST_WEBHOOK_ENCRYPTION_KEY,
        }
        self.process = start_process(
            "mlflow",
            argv,
            self.root / "logs",
            ready=lambda: http_ok(f"{self.url}/health"),
            port=self.port,
            env=env,
            timeout=timeout,
        )
        return self

    def stop(self) -> None:
        if self.process is not None:
            self.process.stop()

    def restart(self) -> MlflowServer:
        self.stop()
        return self.start()


def start_mlflow(root: Path, port: int | None = None) -> MlflowServer:
    root.mkdir(parents=True, exist_ok=True)
    return MlflowServer(root=root, port=port or free_port()).start()
