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

**Sampled pairing for the drift checks** (:class:`PairSampler`): labels arrive late or
never, and two independent arms cannot show a 5-point prediction-mix shift within 2,000
requests each (docs/statistics.md, "What unpaired arms can show"). So a random share of the
*unlabelled* logged responses is re-scored on the other arm as well, within a budget of
re-scores per second of its own, and each such pair is counted in
``modeldeploy_paired_predictions_total`` (the series local mode's router counts for the
inputs it sends to both arms): the drift checks' paired evidence. The draw is random and
independent of the input and the answer, so the pairs are a fair sample of the traffic.

Every re-score carries a ``Ce-Id`` of :data:`RESCORE_CE_ID_PREFIX`: KServe's agent logs a
request under its ``Ce-Id`` header (handler.go:143), so the joiner knows the events of its
own re-scores when the arm logs them, and never samples those (no re-score of a re-score).

The decision (:func:`plan`) is pure; :class:`Rescorer` does the one HTTP call.
"""

from __future__ import annotations

import asyncio
import json
import math
import os
import random
import time
import uuid
from collections.abc import Callable, Mapping
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

RESCORE_CE_ID_PREFIX = "modeldeploy-rescore-"
"""``Ce-Id`` of the joiner's own re-scores (see the module docstring)."""
DEFAULT_PAIR_SHARE = 0.0
"""The joiner's default share of unlabelled responses re-scored for the drift checks: off.

Local mode's router already sends ``--paired-share`` of the canary's requests to both arms
and counts those pairs itself; the chart turns sampling on for KServe (``joiner.pairShare``)."""
DEFAULT_PAIR_RATE = 20.0
"""Re-scores per second the sampled pairing may spend at most (one inference each, on the
arm that did not serve the request; the same as pairing on label's budget): 30% of about
65 requests/s, a few percent of one CPU predictor's capacity. Faster traffic is drawn at
``rate / request rate`` instead (:class:`PairSampler`)."""


def is_rescore(ce_id: str) -> bool:
    """Whether a logged event is of one of the joiner's own re-scores."""
    return ce_id.startswith(RESCORE_CE_ID_PREFIX)


class PairSampler:
    """Which unlabelled logged responses to pair: a random share, sized to a budget.

    Each eligible response is drawn with probability ``min(share, rate_per_s / r)``, where
    ``r`` is the observed rate of eligible responses (an exponentially weighted count,
    time constant :attr:`RATE_WINDOW_S`, divided by the weight the window has had so far, so
    it is not biased low in its first seconds): the compute budget is spread evenly over the
    traffic instead of being spent on the first responses of each second. The draw is
    independent of what was asked or answered, so the pairs stay a uniform sample. The
    token bucket (``budget``, one second's worth) still bounds a burst the rate estimate
    has not caught up with. ``share`` 0 (or ``rate_per_s`` 0) turns sampling off.
    """

    RATE_WINDOW_S = 10.0

    def __init__(
        self,
        share: float,
        rate_per_s: float = DEFAULT_PAIR_RATE,
        rng: random.Random | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not 0.0 <= share <= 1.0:
            raise ValueError(f"the pair share must be in [0, 1], got {share}")
        if rate_per_s < 0:
            raise ValueError(f"the pair rate must be >= 0, got {rate_per_s}")
        self.share = share
        self.rate_per_s = rate_per_s
        self.budget = RescoreBudget(rate_per_s if share > 0 else 0.0, clock)
        self._rng = rng or random.Random()
        self._clock = clock
        self._rate = 0.0  # decayed count / window: events per second once the window is full
        self._first: float | None = None
        self._last: float | None = None

    @property
    def enabled(self) -> bool:
        return self.share > 0 and self.budget.enabled

    @property
    def observed_rate(self) -> float:
        """Eligible responses per second, as last estimated (0 before any)."""
        if self._first is None or self._last is None:
            return 0.0
        # at least a second's weight: two responses a millisecond apart are not 1,000/s
        span = max(self._last - self._first, 1.0)
        return self._rate / -math.expm1(-span / self.RATE_WINDOW_S)

    @property
    def probability(self) -> float:
        """The share drawn now: ``share``, less where the traffic outruns the budget."""
        if not self.enabled:
            return 0.0
        rate = self.observed_rate
        if rate <= self.rate_per_s:
            return self.share
        return min(self.share, self.rate_per_s / rate)

    def draw(self) -> bool:
        """Count one eligible response and say whether to pair it (the budget is spent
        later, when the re-score starts)."""
        if not self.enabled:
            return False
        now = self._clock()
        if self._last is not None:
            self._rate *= math.exp(-max(now - self._last, 0.0) / self.RATE_WINDOW_S)
        else:
            self._first = now
        self._rate += 1.0 / self.RATE_WINDOW_S
        self._last = max(now, self._last or now)
        return self._rng.random() < self.probability


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

    async def score(self, chosen: Plan, budget: RescoreBudget | None = None) -> Scored | str:
        """The other arm's predictions, or the outcome that stood in for them.

        ``budget``: the one to spend (default: pairing on label's); the pacer is shared, so
        an arm sees one re-score at a time whichever path asked for it.
        """
        assert chosen.stored is not None and self._session is not None
        if not (budget or self.budget).take():
            return "over_budget"
        delay = self.pacer.reserve(chosen.role)
        if delay > 0:
            await asyncio.sleep(delay)
        headers: dict[str, Any] = {**chosen.stored.headers, **self.credential}
        headers["Ce-Id"] = RESCORE_CE_ID_PREFIX + uuid.uuid4().hex
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
