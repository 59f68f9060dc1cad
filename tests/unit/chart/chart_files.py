"""Generate the chart's derived files from the code, and read them back for the tests.

``charts/modeldeploy/files/rbac-rules.yaml`` is rendered by ``modeldeploy.operator.rbac``
(the exact (apiGroup, resource, verbs) the operator calls; ``modeldeploy operator rbac``
prints it). Regenerate it after changing rbac.py::

    .venv/bin/python -m tests.unit.chart.chart_files

The CRD under ``charts/modeldeploy/crds/`` comes from ``modeldeploy operator crd``; this
module only compares it (see test_chart.py).
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[3]
CHART = ROOT / "charts" / "modeldeploy"
RBAC_FILE = CHART / "files" / "rbac-rules.yaml"

Triple = tuple[str, str, tuple[str, ...]]


def _field(item: Any, *names: str) -> Any:
    for name in names:
        if isinstance(item, Mapping) and name in item:
            return item[name]
        if hasattr(item, name):
            return getattr(item, name)
    raise TypeError(f"rbac rule {item!r} has none of {names}")


def _as_list(value: Any) -> list[str]:
    return [value] if isinstance(value, str) else [str(v) for v in value]


def normalise(items: Iterable[Any]) -> list[Triple]:
    """(apiGroup, resource, sorted verbs) per resource, from tuples, dicts or objects."""
    merged: dict[tuple[str, str], set[str]] = {}
    for item in items:
        if isinstance(item, tuple | list) and len(item) == 3:
            groups, resources, verbs = item
        else:
            groups = _field(item, "api_group", "apiGroup", "group", "api_groups", "apiGroups")
            resources = _field(item, "resource", "resources")
            verbs = _field(item, "verbs")
        for group in _as_list(groups):
            for resource in _as_list(resources):
                merged.setdefault((group, resource), set()).update(_as_list(verbs))
    return [(g, r, tuple(sorted(v))) for (g, r), v in sorted(merged.items())]


def rules_from_code() -> list[Triple]:
    """The operator's rules, from ``modeldeploy.operator.rbac`` (ImportError if absent)."""
    rbac = importlib.import_module("modeldeploy.operator.rbac")
    for name in ("RULES", "rules", "POLICY_RULES", "policy_rules", "OPERATOR_RULES"):
        found = getattr(rbac, name, None)
        if found is not None:
            return normalise(found() if callable(found) else found)
    raise AttributeError("modeldeploy.operator.rbac exposes no RULES / rules()")


def render_rbac_file(triples: list[Triple]) -> str:
    """The rules file for ``triples``, exactly as ``modeldeploy operator rbac`` prints it."""
    from modeldeploy.operator import rbac

    return rbac.render(triples)


def rules_in_chart() -> dict[str, list[dict[str, Any]]]:
    return yaml.safe_load(RBAC_FILE.read_text())


def main() -> int:
    from modeldeploy.operator import rbac

    RBAC_FILE.write_text(rbac.render())
    print(f"wrote {RBAC_FILE.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
