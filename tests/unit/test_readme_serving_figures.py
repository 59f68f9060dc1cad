"""The README's serving sections are the renderings of ``bench/results.json``.

The figures depend on the CPU's features, so the file keeps one run per kind of machine
(``serving``: AMX/bf16, ``serving_avx2``: AVX2/fp32) and the README quotes both; a figure
edited by hand, or a rerun not rendered again, fails here.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from modeldeploy.tools.bench.serving.readme import main, render

ROOT = Path(__file__).resolve().parents[2]
RESULTS = json.loads((ROOT / "bench" / "results.json").read_text())
README = (ROOT / "README.md").read_text()


def _body(section: str) -> str:
    """The rendered section without its heading (the README adds prose under the heading)."""
    return section.split("\n", 2)[2]


@pytest.mark.parametrize("key", ["serving", "serving_avx2"])
def test_the_readme_quotes_each_machines_run_as_rendered(key):
    section = render(RESULTS, key)
    assert section.splitlines()[0] in README  # the heading with its date
    assert _body(section) in README


def test_each_run_names_the_cpu_features_and_precision_it_depends_on():
    amx = RESULTS["serving"]["figures"]
    avx2 = RESULTS["serving_avx2"]["figures"]
    assert "amx_bf16" in amx["machine"]["cpu_flags_used"]
    assert amx["summary"]["served_as"]["precision"] == "bf16"
    assert "amx_bf16" not in avx2["machine"]["cpu_flags_used"]
    assert avx2["summary"]["served_as"]["precision"] == "fp32"


def test_the_key_is_named_in_the_heading_of_a_second_run(capsys):
    assert main([str(ROOT / "bench" / "results.json"), "serving_avx2"]) == 0
    heading = capsys.readouterr().out.splitlines()[0]
    assert "key `serving_avx2`" in heading
    assert "key" not in render(RESULTS).splitlines()[0]
