"""Operator settings: frozen dataclasses, one per concern, read from the environment once.

Parsed in the kopf startup hook (kept in kopf's ``memo``); nothing else reads the
environment, and nothing reads it at import time. The one thing written *to* the
environment is the MLflow client's retry policy (:func:`apply_mlflow_client_env`): the
MLflow client only reads it from there.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field

MLFLOW_MAX_RETRIES = "MLFLOW_HTTP_REQUEST_MAX_RETRIES"
MLFLOW_TIMEOUT = "MLFLOW_HTTP_REQUEST_TIMEOUT"


@dataclass(frozen=True)
class RegistrySettings:
    default_uri: str = ""
    watch_seconds: float = 10.0  # full registry polls by the watcher; 0 turns it off
    webhook_port: int = 0  # 0: no webhook receiver
    webhook_host: str = "0.0.0.0"
    webhook_secret: str = ""
    # MLflow's client retries a failed request for minutes by default (7 retries with a
    # doubling back-off, 120 s timeout): the operator would neither tick nor report
    # RegistryAvailable=False for ~4.5 minutes, nor stop on SIGTERM. Bounded by default.
    http_max_retries: int = 2
    http_timeout_seconds: int = 10  # MLflow reads it as an integer


@dataclass(frozen=True)
class RolloutSettings:
    tick_seconds: float = 10.0
    platform: str = "kserve"  # kserve | nop
    # A tick still running after this is reported (and the next one waits for it): the
    # bound on one tick's registry and platform calls, off the event loop.
    tick_timeout_seconds: float = 60.0


@dataclass(frozen=True)
class PeeringSettings:
    """kopf peering (leader election); each replica's priority comes from ``runner.py``."""

    lifetime_seconds: int = 60  # how long a silent peer (a killed leader) still counts


@dataclass(frozen=True)
class OperatorSettings:
    registry: RegistrySettings = field(default_factory=RegistrySettings)
    rollout: RolloutSettings = field(default_factory=RolloutSettings)
    peering: PeeringSettings = field(default_factory=PeeringSettings)
    metrics_port: int = 0  # 0: no operator /metrics endpoint
    kubeconfig: str = ""  # outside a cluster: the kubeconfig file (empty: ~/.kube/config)
    # The chart's monitoring.cost.cpuCoreHour: the price behind the cost.* money figures of a
    # ModelDeployment without spec.cost.cpuCoreHour; 0: CPU seconds per 1k only.
    cpu_core_hour: float = 0.0
    # The chart's monitoring.cost.gpuHour, likewise for spec.cost.gpuHour; 0: no GPU price, so
    # arms that hold GPUs get seconds per 1k but no money figure.
    gpu_hour: float = 0.0

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
                http_max_retries=int(env.get(MLFLOW_MAX_RETRIES, "2")),
                http_timeout_seconds=int(env.get(MLFLOW_TIMEOUT, "10")),
            ),
            rollout=RolloutSettings(
                tick_seconds=float(env.get("MODELDEPLOY_TICK_SECONDS", "10")),
                platform=env.get("MODELDEPLOY_PLATFORM", "kserve"),
                tick_timeout_seconds=float(env.get("MODELDEPLOY_TICK_TIMEOUT_SECONDS", "60")),
            ),
            peering=PeeringSettings(
                lifetime_seconds=int(env.get("MODELDEPLOY_PEERING_LIFETIME_SECONDS", "60")),
            ),
            metrics_port=int(env.get("MODELDEPLOY_OPERATOR_METRICS_PORT", "0")),
            kubeconfig=env.get("KUBECONFIG", ""),
            cpu_core_hour=_price(env, "MODELDEPLOY_COST_CPU_CORE_HOUR"),
            gpu_hour=_price(env, "MODELDEPLOY_COST_GPU_HOUR"),
        )


# The images ``make images`` builds (Makefile IMAGE_REPO / IMAGE_TAG); the chart's defaults
# name the same ones (tests/unit/test_images.py checks that all three agree).
IMAGE_REPO = "ghcr.io/modeldeploy"
IMAGE_TAG = "0.1.0"
PREDICTOR_IMAGE = f"{IMAGE_REPO}/predictor:{IMAGE_TAG}"
PREDICTOR_CUDA_IMAGE = f"{IMAGE_REPO}/predictor-cuda:{IMAGE_TAG}"
TRITON_IMAGE = f"{IMAGE_REPO}/predictor-triton:{IMAGE_TAG}"
# The chart's predictor.labelAuth defaults (secretName, mountPath): on unless turned off.
LABEL_AUTH_SECRET = "modeldeploy-label-auth"
LABEL_AUTH_MOUNT_PATH = "/var/run/modeldeploy/auth"


def _price(env: Mapping[str, str], name: str) -> float:
    raw = env.get(name, "").strip() or "0"
    try:
        value = float(raw)
    except ValueError:
        raise ValueError(f"{name}={raw!r}: expected a price, a number >= 0") from None
    if not 0 <= value < float("inf"):
        raise ValueError(f"{name}={raw!r}: expected a price, a number >= 0")
    return value


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
    # Where published Triton repositories live (s3://, gs://, https:// or pvc://): a triton
    # ModelDeployment loads <base>/<model>/<version>/triton (modeldeploy.registry.triton).
    triton_base_uri: str = ""
    credentials_secret: str = ""  # Secret whose keys become the predictor's environment
    service_account: str = ""  # predictor pods' serviceAccountName (e.g. IRSA / workload id)
    knative_security_context: bool = False  # kubernetes.podspec-securitycontext
    knative_node_selector: bool = False  # kubernetes.podspec-nodeselector
    knative_tolerations: bool = False  # kubernetes.podspec-tolerations
    knative_emptydir: bool = True  # kubernetes.podspec-volumes-emptydir
    # The Secret (keys label-token, control-token) mounted into kserve-python predictors,
    # which then refuse anonymous labels; "" runs them open (they warn). It must exist in
    # each ModelDeployment's namespace.
    label_auth_secret: str = LABEL_AUTH_SECRET
    label_auth_mount_path: str = LABEL_AUTH_MOUNT_PATH
    # The joiner (docs/serving.md): its events URL goes into every predictor's
    # ``logger`` block, its metrics URL into the scrape targets; "" keeps labels on the pods.
    joiner_events_url: str = ""
    joiner_metrics_url: str = ""
    # "<namespace>/<name>" of the joiner's arms ConfigMap: while a canary runs, its stable
    # and canary URLs are patched into one key of it (platforms/kserve_arms.py); "" never.
    joiner_arms_configmap: str = ""

    def __post_init__(self) -> None:
        path = self.label_auth_mount_path
        if not path.startswith("/") or path.rstrip("/") in ("", "/tmp", "/dev"):
            raise ValueError(
                f"label auth mountPath {path!r}: expected an absolute path other than / /tmp /dev"
            )

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> KServeSettings:
        env = os.environ if env is None else env
        return cls(
            predictor_image=env.get("MODELDEPLOY_PREDICTOR_IMAGE") or PREDICTOR_IMAGE,
            predictor_gpu_image=env.get("MODELDEPLOY_PREDICTOR_GPU_IMAGE") or PREDICTOR_CUDA_IMAGE,
            triton_image=env.get("MODELDEPLOY_TRITON_IMAGE") or TRITON_IMAGE,
            triton_base_uri=env.get("MODELDEPLOY_TRITON_BASE_URI", ""),
            credentials_secret=env.get("MODELDEPLOY_PREDICTOR_CREDENTIALS_SECRET", ""),
            service_account=env.get("MODELDEPLOY_PREDICTOR_SERVICE_ACCOUNT", ""),
            knative_security_context=_flag(
                env, "MODELDEPLOY_KNATIVE_PODSPEC_SECURITYCONTEXT", False
            ),
            knative_node_selector=_flag(env, "MODELDEPLOY_KNATIVE_PODSPEC_NODESELECTOR", False),
            knative_tolerations=_flag(env, "MODELDEPLOY_KNATIVE_PODSPEC_TOLERATIONS", False),
            knative_emptydir=_flag(env, "MODELDEPLOY_KNATIVE_PODSPEC_VOLUMES_EMPTYDIR", True),
            # Set but empty turns authentication off; unset keeps the default Secret.
            label_auth_secret=env.get("MODELDEPLOY_PREDICTOR_LABEL_AUTH_SECRET", LABEL_AUTH_SECRET),
            label_auth_mount_path=env.get("MODELDEPLOY_PREDICTOR_LABEL_AUTH_MOUNT_PATH")
            or LABEL_AUTH_MOUNT_PATH,
            joiner_events_url=env.get("MODELDEPLOY_JOINER_EVENTS_URL", ""),
            joiner_metrics_url=env.get("MODELDEPLOY_JOINER_METRICS_URL", ""),
            joiner_arms_configmap=env.get("MODELDEPLOY_JOINER_ARMS_CONFIGMAP", ""),
        )


def mlflow_client_env(registry: RegistrySettings) -> dict[str, str]:
    """The MLflow client's retry policy as the environment variables MLflow reads."""
    return {
        MLFLOW_MAX_RETRIES: str(registry.http_max_retries),
        MLFLOW_TIMEOUT: str(registry.http_timeout_seconds),
    }


def apply_mlflow_client_env(
    registry: RegistrySettings, env: os._Environ[str] | dict[str, str] | None = None
) -> None:
    """Put the retry policy into the environment before any MLflow client call.

    The settings read these same variables, so a value already set wins (overridable).
    """
    target = os.environ if env is None else env
    target.update(mlflow_client_env(registry))


def bound_mlflow_client_env() -> None:
    """The operator's MLflow retry policy for a process without OperatorSettings (local mode):
    each variable not already set gets the default."""
    for key, value in mlflow_client_env(RegistrySettings()).items():
        os.environ.setdefault(key, value)
