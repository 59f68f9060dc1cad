"""Pairing on a cluster: have the arm that did not score a labelled item score its input.

A label for an item only one of stable and canary scored is worth about five unpaired
labels once the other arm has scored it too (docs/statistics.md). On KServe each revision
has its own URL (tag routing: ``status.components.predictor.traffic[].url``), so the
joiner sends the stored request body there, within a :class:`RescoreBudget`, and records
the answer as that arm's prediction.

Where the arms are comes from a small JSON file, or a directory of them, the joiner re-reads
when it changes (:class:`ArmsFile`; on a cluster the arms ConfigMap, whose per-deployment
keys the operator keeps current while a canary runs), one entry per deployment::

    {"deployments": {"demo": {"model": "demo",
                              "arms": {"stable": "http://prev-demo-predictor.ns",
                                       "canary": {"url": "http://latest-demo-predictor.ns",
                                                  "version": "7"}}}}}

An arm is its base URL, or ``{"url", "version"}`` (the version is needed for Triton, whose
answers carry their repository's version number, not the registry's).

The decision (:func:`plan`) is pure; :class:`Rescorer` does the one HTTP call.
"""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp

from modeldeploy.serving.joiner.book import JoinBook, JoinedItem
from modeldeploy.serving.joiner.events import EventError, Scored, scored
from modeldeploy.serving.router.pairing import (
    RescoreBudget,
    RescorePacer,
    StoredInput,
    rescore_role,
)
from modeldeploy.serving.router.responses import predictions_in


@dataclass(frozen=True)
class DeploymentArms:
    """One deployment's model name (the predict path), each role's base URL and version."""

    model: str
    urls: Mapping[str, str]
    versions: Mapping[str, str]

    def path(self, protocol: str) -> str:
        if protocol == "v1":
            return f"/v1/models/{self.model}:predict"
        return f"/v2/models/{self.model}/infer"


def parse_arms(data: object) -> dict[str, DeploymentArms]:
    """The arms file's content; raises ValueError naming what is wrong."""
    if not isinstance(data, dict) or not isinstance(data.get("deployments"), dict):
        raise ValueError('expected {"deployments": {<name>: {"model": ..., "arms": {...}}}}')
    out = {}
    for name, entry in data["deployments"].items():
        if not isinstance(entry, dict) or not isinstance(entry.get("arms"), dict):
            raise ValueError(f"deployment {name!r}: expected 'model' and 'arms'")
        model = entry.get("model") or name
        urls, versions = {}, {}
        for role, arm in entry["arms"].items():
            if not isinstance(arm, dict):
                arm = {"url": arm}
            url, version = arm.get("url"), arm.get("version")
            if url:
                urls[str(role)], versions[str(role)] = str(url).rstrip("/"), str(version or "")
        bad = [u for u in urls.values() if not u.startswith(("http://", "https://"))]
        if bad or not isinstance(model, str) or "/" in model:
            raise ValueError(f"deployment {name!r}: bad model name or arm URL {bad}")
        out[str(name)] = DeploymentArms(model, urls, versions)
    return out


class ArmsFile:
    """The arms file, or a directory of them, re-read when it changes; a bad file keeps the
    last good content (and says why in :attr:`error`), so a half-written ConfigMap pairs
    nothing wrongly.

    A directory is what the kubelet makes of the arms ConfigMap: one file per key (the
    chart's hand-filled ``arms.json`` and one ``<namespace>.<name>.json`` per deployment the
    operator is rolling out, ``contract/joiner.py`` ``arms_key``). Every ``*.json`` in it is
    read and merged, keyed by namespace and name: a file ``<namespace>.<name>.json`` that
    holds exactly deployment ``<name>`` is that namespace's (so same-named deployments of two
    namespaces are both paired); any other file's deployments hold for every namespace. One
    namespace and name in two files is left out (ambiguous, so not paired) and named in
    :attr:`error`.
    """

    def __init__(self, path: str | os.PathLike[str] | None) -> None:
        self.path = Path(path) if path else None
        self._stamp: object = None
        self._arms: dict[tuple[str, str], DeploymentArms] = {}
        self.error = ""

    def _files(self) -> list[Path]:
        assert self.path is not None
        if not self.path.is_dir():
            return [self.path]
        # ``..data`` and the timestamped folder are the kubelet's atomic-update machinery.
        names = (p for p in self.path.iterdir() if not p.name.startswith("."))
        return sorted(p for p in names if p.name.endswith(".json"))

    def _stamp_now(self) -> object:
        """What changes when any file changes: each file's name, mtime and size."""
        out = []
        for file in self._files():
            st = file.stat()
            out.append((file.name, st.st_mtime_ns, st.st_size))
        return tuple(out)

    def _load(self) -> dict[tuple[str, str], DeploymentArms]:
        merged: dict[tuple[str, str], DeploymentArms] = {}
        seen: dict[tuple[str, str], str] = {}
        twice: dict[tuple[str, str], str] = {}
        for file in self._files():
            try:
                found = parse_arms(json.loads(file.read_text(encoding="utf-8")))
            except ValueError as exc:
                raise ValueError(f"{file.name}: {exc}") from exc
            namespace = namespace_of(file.name, found)
            for name, arms in found.items():
                key = (namespace, name)
                if key in seen:
                    twice[key] = f"{'/'.join(filter(None, key))!r} in {seen[key]} and {file.name}"
                seen[key] = file.name
                merged[key] = arms
        for key in twice:
            del merged[key]
        if twice:
            self.error = "named by two files, not paired: " + "; ".join(twice.values())
        return merged

    def get(self, deployment: str, namespace: str = "") -> DeploymentArms | None:
        """The arms of ``namespace``/``deployment``: that namespace's own entry, else one
        that holds for every namespace; without a namespace (an event that named none), the
        only entry of that name, if there is exactly one."""
        if self.path is None:
            return None
        try:
            stamp = self._stamp_now()
        except OSError as exc:
            self.error = f"cannot read {self.path}: {exc}"
            return self._find(deployment, namespace)
        if stamp != self._stamp:
            self._stamp = stamp
            self.error = ""
            try:
                self._arms = self._load()
            except (OSError, ValueError) as exc:
                self.error = f"{self.path}: {exc}"
        return self._find(deployment, namespace)

    def _find(self, deployment: str, namespace: str) -> DeploymentArms | None:
        if namespace:
            return self._arms.get((namespace, deployment)) or self._arms.get(("", deployment))
        matches = [arms for (_, name), arms in self._arms.items() if name == deployment]
        return matches[0] if len(matches) == 1 else None


def namespace_of(file_name: str, found: Mapping[str, DeploymentArms]) -> str:
    """The namespace a ``<namespace>.<name>.json`` key (``contract/joiner.py`` ``arms_key``)
    names, when the file holds exactly deployment ``<name>``; else ``""`` (every namespace).

    A namespace is a DNS label (no dots), so it ends at the first dot; a name may hold dots.
    """
    stem = file_name.removesuffix(".json")
    namespace, _, name = stem.partition(".")
    return namespace if name and set(found) == {name} else ""


@dataclass(frozen=True)
class Plan:
    """Score ``input`` on ``role`` at ``url`` to pair an item; or why not (``skip``)."""

    role: str = ""
    url: str = ""
    stored: StoredInput | None = None
    skip: str = ""
    version: str = ""


def plan(book: JoinBook, item: JoinedItem, arms: DeploymentArms | None) -> Plan:
    """What pairing a label for ``item`` needs (pure: no budget spent, no call made)."""
    if arms is None:
        return Plan(skip="no_arms")
    role = rescore_role(item.predictions, list(arms.urls))
    if role is None:
        return Plan(skip="not_needed")
    served_by = "stable" if role == "canary" else "canary"
    stored = book.stored_input(item, served_by)
    if stored is None:
        return Plan(skip="no_input")
    return Plan(role, arms.urls[role] + arms.path(stored.protocol), stored,
                version=arms.versions.get(role, ""))  # fmt: skip


class Rescorer:
    """Sends a stored input to the other arm within the budget and parses its answer.

    Paced per arm as the router's re-scores are (:class:`RescorePacer`): a clump of labels
    must not become a burst on one arm, whose latency histogram counts the re-scores.
    """

    def __init__(
        self,
        budget: RescoreBudget,
        timeout_s: float = 10.0,
        pacer: RescorePacer | None = None,
        credential: Mapping[str, str] | None = None,
    ) -> None:
        self.budget = budget
        self.timeout_s = timeout_s
        self.pacer = pacer or RescorePacer(0.0)
        self.credential = dict(credential or {})
        """Sent with every re-score: a predictor answers the platform in the full view."""
        self._session: aiohttp.ClientSession | None = None

    async def open(self) -> None:
        self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=self.timeout_s))

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()

    async def score(self, chosen: Plan) -> Scored | str:
        """The other arm's predictions, or the outcome that stood in for them."""
        assert chosen.stored is not None and self._session is not None
        if not self.budget.take():
            return "over_budget"
        delay = self.pacer.reserve(chosen.role)
        if delay > 0:
            await asyncio.sleep(delay)
        headers: dict[str, Any] = {**chosen.stored.headers, **self.credential}
        try:
            async with self._session.post(
                chosen.url, data=chosen.stored.body, headers=headers
            ) as response:
                body = await response.read()
                if response.status != 200:
                    return "failed"
        except (TimeoutError, aiohttp.ClientError):
            return "failed"
        try:
            got = scored(body, chosen.version)
        except EventError:
            return "failed"
        answered = answered_versions(body)
        if chosen.version and answered and answered != {chosen.version}:
            return "wrong_version"
        return got


def answered_versions(body: bytes) -> set[str]:
    """The registry versions a modeldeploy predictor says answered (v1/v2 ``model_version``);
    empty where the answer does not say (Triton's answers carry its repository's version; a
    predictor in the label view answers the platform's credential in the full view, but
    without credentials it names none, and the check is skipped).

    A re-score is recorded as the arm's version, so an answer from another version (the URL
    still reached the previous revision) must be refused, not recorded under the wrong one.
    """
    try:
        answer = json.loads(body)
    except ValueError:
        return set()
    found, _ = predictions_in(answer) if isinstance(answer, dict) else ([], None)
    return {p.model_version for p in found if p.model_version}
