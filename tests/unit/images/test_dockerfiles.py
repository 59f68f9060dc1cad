"""The container images, checked statically: no registry is reachable here, so no base image
can be pulled and nothing is built. Each Dockerfile is parsed and checked for what the
cluster and the chart rely on (pinned bases, a non-root final user, small final stages, the
operator without torch, entrypoints the real CLI accepts), and the names ``make images``
builds are compared with the chart's and the operator's defaults.
"""

from __future__ import annotations

import json
import re
import shlex
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import yaml

from modeldeploy.operator import settings as s
from modeldeploy.operator.api.status import VersionRef
from modeldeploy.operator.api.types import parse_spec
from modeldeploy.operator.platforms import kserve_manifests as m
from modeldeploy.operator.platforms.base import Target

ROOT = Path(__file__).resolve().parents[3]
IMAGES = ROOT / "images"
CHART = ROOT / "charts" / "modeldeploy"
PYTHON_IMAGES = ("operator", "predictor", "predictor-cuda")
# x.y.z (python:3.11.7-slim-bookworm), or NVIDIA's monthly release tags (24.08-py3);
# "3.11-slim" or "24-py3" move under you.
EXACT_TAG = re.compile(r"^(\d+\.\d+\.\d+|\d{2}\.\d{2}-)")


@dataclass
class Stage:
    base: str
    lines: list[tuple[str, str]] = field(default_factory=list)  # (INSTRUCTION, rest)

    def all(self, instruction: str) -> list[str]:
        return [rest for ins, rest in self.lines if ins == instruction]


def parse(path: Path) -> list[Stage]:
    """Stages of a Dockerfile: comments dropped, continuation lines joined."""
    text = re.sub(r"\\\n", " ", path.read_text())
    stages: list[Stage] = []
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        instruction, _, rest = line.partition(" ")
        instruction = instruction.upper()
        if instruction == "FROM":
            stages.append(Stage(rest.split()[0]))
        else:
            assert stages, f"{path.name}: {instruction} before FROM"
            stages[-1].lines.append((instruction, rest.strip()))
    return stages


def exec_form(value: str) -> list[str]:
    parsed = json.loads(value)
    assert isinstance(parsed, list), "ENTRYPOINT/CMD must use the exec (JSON) form"
    return [str(p) for p in parsed]


def dockerfiles() -> list[Path]:
    return sorted(IMAGES.glob("*.Dockerfile"))


def test_there_is_one_dockerfile_per_image() -> None:
    names = {p.name.removesuffix(".Dockerfile") for p in dockerfiles()}
    assert names == {"operator", "predictor", "predictor-cuda", "triton"}


@pytest.mark.parametrize("path", dockerfiles(), ids=lambda p: p.name)
def test_bases_are_pinned(path: Path) -> None:
    stages = parse(path)
    built = {s.base for s in stages}
    for stage in stages:
        base = stage.base
        if base in built and ":" not in base and "@" not in base:
            continue  # FROM an earlier stage by name
        if "@sha256:" in base:
            continue
        name, _, tag = base.rpartition(":")
        assert name and tag, f"{base}: no tag"
        assert tag != "latest", base
        assert EXACT_TAG.match(tag), f"{base}: tag is not an exact version"
    assert "latest" not in path.read_text().lower()


@pytest.mark.parametrize("path", dockerfiles(), ids=lambda p: p.name)
def test_the_final_stage_runs_as_a_non_root_user(path: Path) -> None:
    users = parse(path)[-1].all("USER")
    assert users, "no USER in the final stage"
    user = users[-1].split(":")[0]
    assert user not in ("root", "0"), user
    assert user.isdigit(), "a numeric UID lets the kubelet check runAsNonRoot"


@pytest.mark.parametrize("name", PYTHON_IMAGES)
def test_python_images_are_multi_stage_without_build_tools_in_the_final_stage(name: str) -> None:
    stages = parse(IMAGES / f"{name}.Dockerfile")
    assert len(stages) >= 2
    final = stages[-1]
    assert final.all("RUN") == [], "the final stage only copies the built venv"
    assert any("--from=" in c for c in final.all("COPY"))
    for stage in stages:
        for run in stage.all("RUN"):
            for command in run.split("&&"):
                if "pip install" in command:
                    assert "--no-cache-dir" in command, command


def test_the_triton_image_adds_the_backend_models_dependencies() -> None:
    stages = parse(IMAGES / "triton.Dockerfile")
    assert stages[0].base.startswith("nvcr.io/nvidia/tritonserver:")
    installs = " ".join(stages[-1].all("RUN"))
    for package in ("tokenizers", "onnxruntime", "numpy"):
        assert package in installs
    assert "--no-cache-dir" in installs
    # KServe's Triton ServingRuntime gives the command; an ENTRYPOINT here would break it.
    assert stages[-1].all("ENTRYPOINT") == []


def test_the_operator_image_installs_neither_torch_nor_the_serving_extra() -> None:
    text = " ".join(r for st in parse(IMAGES / "operator.Dockerfile") for r in st.all("RUN"))
    assert ".[operator]" in text
    assert "torch" not in text and "[serving" not in text and "cuda" not in text


@pytest.mark.parametrize("name", ["predictor", "predictor-cuda"])
def test_predictor_images_install_the_serving_extra(name: str) -> None:
    text = " ".join(r for st in parse(IMAGES / f"{name}.Dockerfile") for r in st.all("RUN"))
    assert ".[serving]" in text
    index = "whl/cu" if name.endswith("cuda") else "whl/cpu"
    assert index in text


def test_the_operator_entrypoint_is_a_real_cli_command() -> None:
    from modeldeploy.cli import build_parser

    final = parse(IMAGES / "operator.Dockerfile")[-1]
    entry = exec_form(final.all("ENTRYPOINT")[-1])
    cmd = exec_form(final.all("CMD")[-1])
    assert entry == ["modeldeploy"]
    args = build_parser().parse_args(cmd)
    assert (args.command, args.operator_command) == ("operator", "run")
    assert getattr(args, "handler", None) is not None


@pytest.mark.parametrize("name", ["predictor", "predictor-cuda"])
def test_predictor_entrypoint_accepts_the_arguments_the_operator_writes(name: str) -> None:
    """ENTRYPOINT + the container args of a real InferenceService parse with the real CLI."""
    from modeldeploy.cli import build_parser

    final = parse(IMAGES / f"{name}.Dockerfile")[-1]
    entry = exec_form(final.all("ENTRYPOINT")[-1])
    assert entry[0] == "modeldeploy"
    spec = parse_spec({"model": {"name": "sentiment", "registryUri": "http://mlflow:5000"}})
    body = m.inference_service(Target("sentiment", "ml", spec), VersionRef("3", "d", "s3://b/3"))
    container = body["spec"]["predictor"]["containers"][0]
    args = build_parser().parse_args(entry[1:] + container["args"])
    assert args.command == "serve" and args.version == "3"
    exposed = [int(p) for p in final.all("EXPOSE")]
    assert container["ports"][0]["containerPort"] in exposed


@pytest.mark.parametrize("name", ["predictor", "predictor-cuda"])
def test_predictor_images_choose_one_malloc_arena(name: str) -> None:
    """Set in the image, the predictor need not start itself again to get it (startup.py)."""
    from modeldeploy.serving.startup import ONE_ARENA

    final = parse(IMAGES / f"{name}.Dockerfile")[-1]
    env = dict(pair.split("=", 1) for rest in final.all("ENV") for pair in shlex.split(rest))
    assert {k: env.get(k) for k in ONE_ARENA} == ONE_ARENA


def built_images() -> set[str]:
    """The image names ``make images`` builds, as make itself expands them (dry run)."""
    out = subprocess.run(
        ["make", "-n", "-s", "images"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout
    tags = set()
    for line in out.splitlines():
        words = shlex.split(line.replace("&&", " "))
        tags |= {words[i + 1] for i, w in enumerate(words) if w == "-t"}
    return tags


def test_make_images_builds_every_dockerfile() -> None:
    out = subprocess.run(
        ["make", "-n", "-s", "images"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout
    used = set(re.findall(r"-f (images/\S+\.Dockerfile)", out))
    assert used == {str(p.relative_to(ROOT)) for p in dockerfiles()}


def test_chart_and_operator_defaults_name_the_images_make_builds() -> None:
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    values = yaml.safe_load((CHART / "values.yaml").read_text())

    def ref(image: dict[str, str]) -> str:
        return f"{image['repository']}:{image['tag'] or chart['appVersion']}"

    from_chart = {
        ref(values["image"]),
        ref(values["predictor"]["image"]),
        ref(values["predictor"]["gpuImage"]),
        ref(values["predictor"]["tritonImage"]),
    }
    defaults = s.KServeSettings()
    from_settings = {defaults.predictor_image, defaults.predictor_gpu_image, defaults.triton_image}
    built = built_images()
    assert len(built) == 4
    assert from_chart == built
    assert from_settings <= built
    assert defaults.predictor_image == m.DEFAULT_IMAGE
