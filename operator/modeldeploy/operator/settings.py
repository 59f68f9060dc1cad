"""Operator settings: frozen dataclasses, one per concern, read from the environment once.

Applied in the kopf startup hook; nothing else reads the environment.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field


@dataclass(frozen=True)
class RegistrySettings:
    default_uri: str = ""
    watch_seconds: float = 10.0  # full registry polls by the watcher; 0 turns it off
    webhook_port: int = 0  # 0: no webhook receiver
    webhook_host: str = "0.0.0.0"
    webhook_secret: str = ""


@dataclass(frozen=True)
class RolloutSettings:
    tick_seconds: float = 10.0
    platform: str = "kserve"  # kserve | nop


@dataclass(frozen=True)
class OperatorSettings:
    registry: RegistrySettings = field(default_factory=RegistrySettings)
    rollout: RolloutSettings = field(default_factory=RolloutSettings)
    metrics_port: int = 0  # 0: no operator /metrics endpoint
    kubeconfig: str = ""  # outside a cluster: the kubeconfig file (empty: ~/.kube/config)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> OperatorSettings:
        env = os.environ if env is None else env
        return cls(
            registry=RegistrySettings(
                default_uri=env.get("MODELDEPLOY_REGISTRY_URI", ""),
                watch_seconds=float(env.get("MODELDEPLOY_REGISTRY_WATCH_SECONDS", "10")),
                webhook_port=int(env.get("MODELDEPLOY_WEBHOOK_PORT", "0")),
                webhook_host=env.get("MODELDEPLOY_WEBHOOK_HOST", "0.0.0.0"),
                webhook_secret=env.get("MODELDEPLOY_WEBHOOK_SECRET", ""),
            ),
            rollout=RolloutSettings(
                tick_seconds=float(env.get("MODELDEPLOY_TICK_SECONDS", "10")),
                platform=env.get("MODELDEPLOY_PLATFORM", "kserve"),
            ),
            metrics_port=int(env.get("MODELDEPLOY_OPERATOR_METRICS_PORT", "0")),
            kubeconfig=env.get("KUBECONFIG", ""),
        )
