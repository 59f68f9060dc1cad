"""`modeldeploy-dev demo --quick`: the demo's scenario end to end, in CI size.

Real MLflow, the operator in local mode on examples/local-demo.yaml, real predictor
processes and the router, review sentences with delayed labels: the good candidate must
be promoted, the bad one rolled back with a reason, the registry must agree, and the
report and the timeline must be written.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from modeldeploy.tools.demo.scenario import run_demo

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[3]


@pytest.mark.long
def test_quick_demo_promotes_the_good_candidate_and_rolls_back_the_bad(tmp_path: Path) -> None:
    lines: list[str] = []
    output = tmp_path / "demo-output"
    result = run_demo("quick", output, ROOT / "examples/local-demo.yaml", out=lines.append)
    log = "\n".join(lines[-120:])
    assert result.ok, log
    good, bad = result.rollouts
    assert good.outcome == "Promoted", log
    assert bad.outcome == "RolledBack" and bad.reason, log
    # the registry agrees: champion moved to the good candidate, the bad one is tagged
    assert result.aliases.get("champion") == good.version, result.aliases
    assert "challenger" not in result.aliases, result.aliases
    assert good.registry.get("outcome") == "promoted", good.registry
    assert bad.registry.get("outcome") == "rejected" and bad.registry.get("reason"), bad.registry
    # promoted step by step: a window at every step of examples/local-demo.yaml
    assert [row["weight"] for row in good.steps] == [50, 100], good.steps
    assert good.steps[0]["pairs"] >= 200 and good.steps[0]["canary_requests"] >= 1000
    # cost per 1k inferences, measured per arm from each predictor's own CPU time
    assert all(row["canary_cpu_per_1k"] > 0 and row["stable_cpu_per_1k"] > 0 for row in good.steps)
    text = result.report_path.read_text()
    assert "**Promoted**" in text and "**RolledBack**" in text and bad.reason[:40] in text
    assert "traffic driver 10 nice steps below the predictors" in text  # local/priority.py
    assert "labels fed back" in text  # the driver process's counts reached the report
    assert result.png_path.read_bytes()[:4] == b"\x89PNG"
    assert any("Report:" in line for line in lines) and any("Timeline:" in line for line in lines)
