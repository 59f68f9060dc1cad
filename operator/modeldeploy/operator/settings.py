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


# The images ``make images`` builds (Makefile IMAGE_REPO / IMAGE_TAG); the chart's defaults
# name the same ones (tests/unit/test_images.py checks that all three agree).
IMAGE_REPO = "ghcr.io/modeldeploy"
IMAGE_TAG = "0.1.0"
PREDICTOR_IMAGE = f"{IMAGE_REPO}/predictor:{IMAGE_TAG}"
PREDICTOR_CUDA_IMAGE = f"{IMAGE_REPO}/predictor-cuda:{IMAGE_TAG}"
TRITON_IMAGE = f"{IMAGE_REPO}/predictor-triton:{IMAGE_TAG}"


def _flag(env: Mapping[str, str], name: str, default: bool) -> bool:
    raw = env.get(name, "").strip().lower()
    if not raw:
        return default
    if raw in ("1", "true", "yes", "on", "enabled"):
        return True
    if raw in ("0", "false", "no", "off", "disabled"):
        return False
    raise ValueError(f"{name}={raw!r}: expected true or false")


@dataclass(frozen=True)
class KServeSettings:
    """What the InferenceServices the operator writes may contain on this cluster.

    Knative refuses pod fields whose feature flag is off (config-features in the
    knative-serving namespace), so the operator emits them only when told the flag is on;
    the defaults are Knative's own (off, except emptyDir volumes).
    """

    predictor_image: str = PREDICTOR_IMAGE  # kserve-python runtime, CPU
    predictor_gpu_image: str = PREDICTOR_CUDA_IMAGE  # kserve-python runtime with gpu > 0
    triton_image: str = TRITON_IMAGE  # triton runtime (NVIDIA's image + tokenizers, onnxruntime)
    credentials_secret: str = ""  # Secret whose keys become the predictor's environment
    service_account: str = ""  # predictor pods' serviceAccountName (e.g. IRSA / workload id)
    knative_security_context: bool = False  # kubernetes.podspec-securitycontext
    knative_node_selector: bool = False  # kubernetes.podspec-nodeselector
    knative_tolerations: bool = False  # kubernetes.podspec-tolerations
    knative_emptydir: bool = True  # kubernetes.podspec-volumes-emptydir

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> KServeSettings:
        env = os.environ if env is None else env
        return cls(
            predictor_image=env.get("MODELDEPLOY_PREDICTOR_IMAGE") or PREDICTOR_IMAGE,
            predictor_gpu_image=env.get("MODELDEPLOY_PREDICTOR_GPU_IMAGE") or PREDICTOR_CUDA_IMAGE,
            triton_image=env.get("MODELDEPLOY_TRITON_IMAGE") or TRITON_IMAGE,
            credentials_secret=env.get("MODELDEPLOY_PREDICTOR_CREDENTIALS_SECRET", ""),
            service_account=env.get("MODELDEPLOY_PREDICTOR_SERVICE_ACCOUNT", ""),
            knative_security_context=_flag(
                env, "MODELDEPLOY_KNATIVE_PODSPEC_SECURITYCONTEXT", False
            ),
            knative_node_selector=_flag(env, "MODELDEPLOY_KNATIVE_PODSPEC_NODESELECTOR", False),
            knative_tolerations=_flag(env, "MODELDEPLOY_KNATIVE_PODSPEC_TOLERATIONS", False),
            knative_emptydir=_flag(env, "MODELDEPLOY_KNATIVE_PODSPEC_VOLUMES_EMPTYDIR", True),
        )
