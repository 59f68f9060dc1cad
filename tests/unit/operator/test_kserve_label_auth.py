"""KServe predictors authenticate labels: the token Secret mounted, the flags pointing at it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from modeldeploy.operator.api.status import VersionRef
from modeldeploy.operator.api.types import parse_spec
from modeldeploy.operator.platforms import kserve_manifests as m
from modeldeploy.operator.platforms.base import Target
from modeldeploy.operator.settings import (
    LABEL_AUTH_MOUNT_PATH,
    LABEL_AUTH_SECRET,
    KServeSettings,
)
from modeldeploy.serving.auth import CONTROL_TOKEN_FILE, LABEL_TOKEN_FILE
from modeldeploy.serving.contract.args import parse_predictor_args
from tests.support import admission as adm

STABLE, CANARY = VersionRef("1", "aa", "s3://b/1"), VersionRef("2", "bb", "s3://b/2")
CFG = KServeSettings(triton_base_uri="s3://models/triton")


def target(**spec: object) -> Target:
    raw = {"model": {"name": "sentiment", "registryUri": "http://mlflow:5000"}, **spec}
    return Target("sentiment", "ml", parse_spec(raw), uid="u-1")


def predictors(body: dict[str, Any]) -> list[dict[str, Any]]:
    """Every predictor component of an InferenceService (stable, and a canary slot)."""
    spec = body["spec"]
    return [spec["predictor"], *(slot["predictor"] for slot in spec.get("canary") or [])]


@pytest.mark.parametrize("mode", ["Serverless", "RawDeployment"])
@pytest.mark.parametrize("canary", [None, CANARY], ids=["stable", "canary"])
def test_python_predictors_mount_the_secret_read_only_and_read_tokens_there(
    mode: str, canary: VersionRef | None
) -> None:
    body = m.inference_service(target(deploymentMode=mode), STABLE, canary, 25, cfg=CFG)
    for pred in predictors(body):
        volume = {v["name"]: v for v in pred["volumes"]}[m.LABEL_AUTH_VOLUME]
        assert volume["secret"]["secretName"] == LABEL_AUTH_SECRET
        container = pred["containers"][0]
        mount = {v["name"]: v for v in container["volumeMounts"]}[m.LABEL_AUTH_VOLUME]
        assert mount == {
            "name": m.LABEL_AUTH_VOLUME,
            "mountPath": LABEL_AUTH_MOUNT_PATH,
            "readOnly": True,
        }
        options = parse_predictor_args(container["args"])
        root = Path(LABEL_AUTH_MOUNT_PATH)
        assert options.label_token_file == root / LABEL_TOKEN_FILE
        assert options.control_token_file == root / CONTROL_TOKEN_FILE
    assert adm.admit(body, adm.DEFAULT_FEATURES) == []  # a Secret volume needs no flag


@pytest.mark.parametrize(
    ("mode", "security_context", "wanted"),
    [
        ("RawDeployment", False, 0o400),  # pod fsGroup: the kubelet adds group read
        ("Serverless", True, 0o400),
        ("Serverless", False, 0o444),  # no fsGroup: root-owned files, UID 65532 reads
    ],
)
def test_file_mode_is_owner_only_wherever_the_pod_has_an_fs_group(
    mode: str, security_context: bool, wanted: int
) -> None:
    cfg = KServeSettings(knative_security_context=security_context)
    pred = m.inference_service(target(deploymentMode=mode), STABLE, cfg=cfg)["spec"]["predictor"]
    assert ("securityContext" in pred) == (wanted == 0o400)
    if "securityContext" in pred:
        assert (
            pred["securityContext"]["fsGroup"]
            == pred["containers"][0]["securityContext"]["runAsUser"]
        )
    volume = {v["name"]: v for v in pred["volumes"]}[m.LABEL_AUTH_VOLUME]
    assert volume["secret"]["defaultMode"] == wanted


def test_triton_predictors_have_no_feedback_endpoint_and_get_no_tokens() -> None:
    body = m.inference_service(target(runtime="triton"), STABLE, CANARY, 25, cfg=CFG)
    for pred in predictors(body):
        assert [v["name"] for v in pred["volumes"]] == ["scratch"]
        assert all("token" not in arg for arg in pred["model"]["args"])


def test_an_empty_secret_name_runs_the_predictors_open() -> None:
    cfg = KServeSettings(label_auth_secret="")
    pred = m.inference_service(target(), STABLE, cfg=cfg)["spec"]["predictor"]
    assert [v["name"] for v in pred["volumes"]] == ["scratch"]
    options = parse_predictor_args(pred["containers"][0]["args"])
    assert options.label_token_file is None and options.control_token_file is None


def test_settings_from_the_environment() -> None:
    assert KServeSettings.from_env({}).label_auth_secret == LABEL_AUTH_SECRET
    cfg = KServeSettings.from_env(
        {
            "MODELDEPLOY_PREDICTOR_LABEL_AUTH_SECRET": "tokens",
            "MODELDEPLOY_PREDICTOR_LABEL_AUTH_MOUNT_PATH": "/etc/md-auth",
        }
    )
    assert (cfg.label_auth_secret, cfg.label_auth_mount_path) == ("tokens", "/etc/md-auth")
    off = KServeSettings.from_env({"MODELDEPLOY_PREDICTOR_LABEL_AUTH_SECRET": ""})
    assert off.label_auth_secret == ""


@pytest.mark.parametrize("path", ["relative/auth", "/", "/tmp", "/dev/"])
def test_a_mount_path_that_would_break_the_pod_is_refused(path: str) -> None:
    with pytest.raises(ValueError, match="mountPath"):
        KServeSettings.from_env({"MODELDEPLOY_PREDICTOR_LABEL_AUTH_MOUNT_PATH": path})
