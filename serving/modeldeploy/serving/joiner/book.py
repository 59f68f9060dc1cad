"""What each arm predicted per item id, and what a label for it counts (pure; clock injected).

Items live in the contract's one :class:`~modeldeploy.serving.contract.store.BoundedStore`
(bounded in entries, bytes and TTL), request bodies for pairing in the router's
:class:`~modeldeploy.serving.router.pairing.InputBook` (bounded in bytes: bodies vary in
size). Rules that keep an outsider from steering a rollout through the logger path:

- with a signing key, only ids the platform signed are recorded, and only for the arm
  that issued them (a predictor stamps its role into its ids; the router's and the
  joiner's own ids may be served by any arm): anything else is ``not_issued`` /
  ``wrong_arm`` and stores nothing;
- first write wins per (item id, role): a second response for the same id and arm is a
  ``duplicate`` and changes nothing, so a later forgery cannot overwrite what was served;
- an id belongs to the deployment that first scored it (``conflict`` otherwise);
- a label counts once per item, whatever arrives later (a re-scored or re-logged id
  never reopens it).
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from typing import Literal

from modeldeploy.serving.contract.ids import (
    ROUTER_ORIGIN,
    IdIssuer,
    ascii_digits,
)
from modeldeploy.serving.contract.ids import label_index as _label_index
from modeldeploy.serving.contract.names import paired_outcome
from modeldeploy.serving.contract.store import (
    DEFAULT_STORE_CAPACITY,
    DEFAULT_STORE_MAX_BYTES,
    DEFAULT_STORE_TTL_S,
    BoundedStore,
)
from modeldeploy.serving.joiner.events import Arm, Scored
from modeldeploy.serving.joiner.journal import Journal, Placed
from modeldeploy.serving.router.pairing import (
    DEFAULT_INPUT_BYTES,
    ArmPrediction,
    InputBook,
    StoredInput,
    pairs,
)

JOINER_ORIGIN = "joiner"
"""Origin of ids the joiner hands out itself (``POST /v1/ids``), for Triton clients."""
MAX_DEPLOYMENTS = 1024
"""Deployments whose class names are remembered (least recently seen out)."""

Ingest = Literal["recorded", "duplicate", "not_issued", "wrong_arm", "expired", "conflict"]
Lookup = Literal["found", "unknown", "expired"]


@dataclass
class JoinedItem:
    """The arms that scored one item (first answer per role wins) and whether it is labelled."""

    deployment: str
    predictions: dict[str, ArmPrediction] = field(default_factory=dict)
    links: dict[str, str] = field(default_factory=dict)
    """Role -> the link (pod and ``ce-id``) of the request it answered: its stored input."""
    labelled: bool = False
    namespace: str = ""
    """The serving InferenceService's namespace (the event's ``ce-namespace``; local mode:
    ``local``): with the name, what finds the deployment's arms for pairing."""


@dataclass(frozen=True)
class Restored:
    """What :meth:`JoinBook.restore` put back from the journal."""

    predictions: int
    labelled: int
    inputs: int


@dataclass(frozen=True)
class Counted:
    """What one label counts: per arm ``(role, version, correct)`` and per pair an outcome."""

    arms: tuple[tuple[str, str, bool], ...]
    pairs: tuple[tuple[str, str, str], ...]
    """``(stable_version, canary_version, outcome)`` for each stable/candidate pair."""


class ClassNames:
    """Class index -> name per deployment, learned from the predictions seen (bounded).

    The joiner knows no model configuration, yet must refuse a label that names no class.
    A v1 answer shows every name (its probabilities); other answers show the predicted
    name and index, and the class count.
    """

    def __init__(
        self,
        max_deployments: int = MAX_DEPLOYMENTS,
        on_change: Callable[[str, dict[int, str], int], None] | None = None,
    ) -> None:
        self._names: OrderedDict[str, dict[int, str]] = OrderedDict()
        self._counts: dict[str, int] = {}
        self.max_deployments = max_deployments
        self.on_change = on_change
        """Called with a deployment's names and count when they change (the journal)."""

    def learn(self, deployment: str, scored: Scored) -> None:
        names = self._names.get(deployment, {})
        seen = [*enumerate(scored.classes), *((p.label_index, p.label) for p in scored.predictions)]
        count = max(self._counts.get(deployment, 0), scored.class_count)
        changed = count != self._counts.get(deployment) or any(names.get(i) != n for i, n in seen)
        names.update(seen)
        self.set(deployment, names, count)  # also the most recently seen deployment now
        if changed and self.on_change is not None:
            self.on_change(deployment, dict(names), count)

    def set(self, deployment: str, names: dict[int, str], count: int) -> None:
        """A deployment's names and class count, as learned (or read back from the journal)."""
        self._names.pop(deployment, None)
        self._names[deployment] = names
        self._counts[deployment] = count
        while len(self._names) > self.max_deployments:
            gone, _ = self._names.popitem(last=False)
            self._counts.pop(gone, None)

    def resolve(self, deployment: str, value: object) -> int | None:
        """The class ``value`` names (index, ASCII digits or a known name), else None."""
        names = self._names.get(deployment, {})
        count = max(self._counts.get(deployment, 0), max(names, default=-1) + 1)
        ordered = [names.get(i, "") for i in range(count)]
        found = _label_index(value, ordered)
        if found is not None and isinstance(value, str) and not ascii_digits(value):
            return found if value else None
        return found


class JoinBook:
    """Item id -> :class:`JoinedItem`; request link -> stored input (see the module docstring)."""

    def __init__(
        self,
        ids: IdIssuer | None = None,
        capacity: int = DEFAULT_STORE_CAPACITY,
        ttl_s: float = DEFAULT_STORE_TTL_S,
        max_bytes: int = DEFAULT_STORE_MAX_BYTES,
        input_bytes: int = DEFAULT_INPUT_BYTES,
        clock: Callable[[], float] = time.monotonic,
        journal: Journal | None = None,
    ) -> None:
        self.ids = ids
        self.ttl_s = ttl_s
        self._base_clock = clock
        self._replay_age = 0.0  # while restoring: the age of the entry being put back
        self.items: BoundedStore[JoinedItem] = BoundedStore(capacity, ttl_s, self._clock, max_bytes)
        self.inputs = InputBook(capacity, input_bytes, ttl_s, self._clock)
        self.journal = journal
        self.classes = ClassNames(on_change=journal.classes if journal is not None else None)

    def _clock(self) -> float:
        """The stores' clock: now, or while restoring, when the entry being put back was made."""
        return self._base_clock() - self._replay_age

    # --- ingest --------------------------------------------------------------------------

    def id_verdict(self, request_id: str, role: str | None = None) -> Ingest | None:
        """None when ``request_id`` may be recorded (or labelled); else why not."""
        if self.ids is None:
            return None
        check = self.ids.check(request_id)
        if check.verdict != "ok":
            return "not_issued"
        if role is not None and check.origin not in (role, ROUTER_ORIGIN, JOINER_ORIGIN):
            return "wrong_arm"
        if self.ids.age_s(check) >= self.ttl_s:
            return "expired"
        return None

    def record_input(self, link: str, stored: StoredInput) -> None:
        """Keep a logged request's body under its link, for pairing on label.

        First write wins here too: the link's ``ce-id`` may be the client's own ``Ce-Id``
        header, and a later request reusing it must not swap the input a label re-scores.
        """
        kept = self.inputs.get(link) is None and self.inputs.put(link, stored)
        if kept and self.journal is not None:
            self.journal.input(link, stored)

    def record(self, arm: Arm, scored: Scored, link: str | None, namespace: str = "") -> Ingest:
        """Store one logged response's predictions for ``arm`` (first write wins)."""
        refused = self.id_verdict(scored.request_id, arm.role)
        if refused is not None:
            return refused
        return self.put_predictions(arm, scored, link, namespace)

    def put_predictions(
        self, arm: Arm, scored: Scored, link: str | None, namespace: str = ""
    ) -> Ingest:
        """Store predictions without the id check (the joiner's own re-scores)."""
        outcome: Ingest = "duplicate"
        for item_id, prediction in zip(scored.item_ids, scored.predictions, strict=True):
            placed = Placed(item_id, arm.role, arm.deployment, namespace, prediction, link)
            result = self._place(placed)
            if result == "conflict":
                return "conflict"
            if result == "recorded":
                outcome = "recorded"
                if self.journal is not None:
                    self.journal.prediction(placed)
        if outcome == "recorded":
            self.classes.learn(arm.deployment, scored)
        return outcome

    def _place(self, placed: Placed) -> Ingest:
        """One arm's prediction for one item, first write wins (ingest and restore alike)."""
        make = partial(JoinedItem, placed.deployment, namespace=placed.namespace)
        item = self.items.setdefault(placed.item_id, make)
        if item.deployment != placed.deployment:
            return "conflict"
        if placed.role in item.predictions:
            return "duplicate"
        item.predictions[placed.role] = placed.prediction
        if placed.link is not None:
            item.links[placed.role] = placed.link
        return "recorded"

    # --- restart -------------------------------------------------------------------------

    def restore(self) -> Restored:
        """Put back what the journal holds within the TTL, each entry at its age (a new
        process, before it takes events or labels)."""
        journal = self.journal
        if journal is None:
            return Restored(0, 0, 0)
        now = journal.now()
        predictions = inputs = 0
        try:
            for row in journal.predictions():
                self._replay_age = max(0.0, now - row.at)
                predictions += self._place(row.placed) == "recorded"
            for kept in journal.inputs():
                self._replay_age = max(0.0, now - kept.at)
                inputs += self.inputs.put(kept.link, kept.stored)
        finally:
            self._replay_age = 0.0
        labelled = 0
        for item_id in journal.labelled_ids():
            found = self.items.get(item_id)
            if found is not None:
                found.labelled = True
                labelled += 1
        for deployment, names, count in journal.class_names():
            self.classes.set(deployment, names, count)
        journal.prune()  # what was past the TTL when this process started goes now
        return Restored(predictions, labelled, inputs)

    # --- labels --------------------------------------------------------------------------

    def mark_labelled(self, item_id: str, item: JoinedItem) -> None:
        """``item`` has had its label counted: never again, in this process or the next."""
        item.labelled = True
        if self.journal is not None:
            self.journal.labelled(item_id)

    def lookup(self, item_id: str) -> tuple[Lookup, JoinedItem | None]:
        return self.items.lookup(item_id)

    def stored_input(self, item: JoinedItem, role: str) -> StoredInput | None:
        """The input the arm ``role`` answered for ``item``, if it is still kept."""
        link = item.links.get(role)
        return self.inputs.get(link) if link is not None else None

    def count(self, item: JoinedItem, true_index: int) -> Counted:
        """What a label of class ``true_index`` counts for ``item`` (the caller counts it once)."""
        arms = tuple(
            (role, p.model_version, p.label_index == true_index)
            for role, p in sorted(item.predictions.items())
        )
        outcomes = tuple(
            (
                stable.model_version,
                candidate.model_version,
                paired_outcome(stable.label_index == true_index,
                               candidate.label_index == true_index),
            )
            for stable, candidate in pairs(item.predictions)
        )  # fmt: skip
        return Counted(arms, outcomes)
