"""pyproject's dependencies and extras agree with the locked venv that `make setup` builds."""

from __future__ import annotations

import tomllib
from importlib.metadata import PackageNotFoundError, version

from packaging.requirements import Requirement

from tests.unit.layout.probe import ROOT

PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]


def declared() -> dict[str, list[Requirement]]:
    groups = {"base": [Requirement(r) for r in PROJECT["dependencies"]]}
    for extra, reqs in PROJECT["optional-dependencies"].items():
        groups[extra] = [Requirement(r) for r in reqs]
    return groups


def test_extras_are_operator_serving_and_dev_and_dev_includes_the_others() -> None:
    groups = declared()
    assert set(groups) == {"base", "operator", "serving", "dev"}
    self_refs = [r for r in groups["dev"] if r.name == PROJECT["name"]]
    assert [sorted(r.extras) for r in self_refs] == [["operator", "serving"]]


def test_every_declared_requirement_is_installed_at_an_allowed_version() -> None:
    problems = []
    for group, reqs in declared().items():
        for req in reqs:
            if req.name == PROJECT["name"]:
                continue
            try:
                installed = version(req.name)
            except PackageNotFoundError:
                problems.append(f"{group}: {req} is not installed")
                continue
            if not req.specifier.contains(installed, prereleases=True):
                problems.append(f"{group}: {req} but {installed} is installed")
    assert problems == []


def test_no_requirement_is_declared_in_two_groups() -> None:
    seen: dict[str, str] = {}
    clashes = []
    for group, reqs in declared().items():
        for req in reqs:
            if req.name in seen and req.name != PROJECT["name"]:
                clashes.append(f"{req.name}: {seen[req.name]} and {group}")
            seen.setdefault(req.name, group)
    assert clashes == []
