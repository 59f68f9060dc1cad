"""Whether the golden-set prober should probe a rollout, and what to tell it.

While a canary is undecided and ``spec.rollout.prober.enabled`` (the default), the prober
probes both arms with the *stable* version's golden set (``registry/golden.py``). This
module decides that once a tick, for both platforms, and gives the ``probe`` block of the
arms entry (``contract/joiner.py`` ``arms_entry``): the canary's start time from the
status (the durable anchor that keeps a restarted prober from re-sending an example,
``serving/prober/schedule.py``), the rate, and the registry to read the set from.

Whether a version has a golden set is one registry read of its tags (the REST client: no
MLflow import here), remembered per version (a found set for good, a missing one for
``RECHECK_S``, so a set attached later is picked up). A stable version without one gets no
probe block and, once per rollout per process, a note the executor emits as an Event:
"no golden set for version N: prober idle".
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from modeldeploy.operator.api.status import CanaryState, VersionRef
from modeldeploy.operator.platforms.base import Target
from modeldeploy.registry.base import RegistryClient
from modeldeploy.registry.golden import golden_ref
from modeldeploy.registry.uris import redact_uri

log = logging.getLogger(__name__)

RECHECK_S = 60.0
MAX_REMEMBERED = 1024


@dataclass(frozen=True)
class ProbePlan:
    """The arms entry's ``probe`` block (None: do not probe) and a note to emit, if any."""

    block: dict[str, Any] | None
    note: str = ""


class _Memory:
    """Golden-set presence per (registry, model, version) and notes already emitted."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self.found: OrderedDict[tuple[str, str, str], tuple[bool, float]] = OrderedDict()
        self.noted: OrderedDict[tuple[object, ...], None] = OrderedDict()
        self.lock = threading.Lock()

    def has_golden(self, client: RegistryClient, uri: str, model: str, version: str) -> bool:
        key = (uri, model, version)
        now = self.clock()
        with self.lock:
            known = self.found.get(key)
        if known is not None and (known[0] or now - known[1] < RECHECK_S):
            return known[0]
        present = golden_ref(client.get_version(model, version).tags) is not None
        with self.lock:
            self.found[key] = (present, now)
            self.found.move_to_end(key)
            while len(self.found) > MAX_REMEMBERED:
                self.found.popitem(last=False)
        return present

    def first_time(self, key: tuple[object, ...]) -> bool:
        with self.lock:
            if key in self.noted:
                return False
            self.noted[key] = None
            while len(self.noted) > MAX_REMEMBERED:
                self.noted.popitem(last=False)
            return True


MEMORY = _Memory()


def epoch_of(timestamp: str) -> float | None:
    """An RFC 3339 status timestamp as epoch seconds (None when empty or unreadable)."""
    if not timestamp:
        return None
    try:
        return datetime.fromisoformat(timestamp.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


def plan(
    target: Target,
    stable: VersionRef | None,
    canary: CanaryState | None,
    client: RegistryClient,
    memory: _Memory = MEMORY,
) -> ProbePlan:
    """The probe block for this tick; never raises (probing decides nothing by itself)."""
    policy = target.spec.rollout.prober
    if stable is None or canary is None or canary.outcome or not policy.enabled:
        return ProbePlan(None)
    since = epoch_of(canary.start_time)
    if since is None:
        return ProbePlan(None)
    model = target.spec.model.name
    try:
        present = memory.has_golden(client, target.registry_uri, model, stable.version)
    except Exception as exc:  # the registry's trouble shows in RegistryAvailable
        log.info("golden set of %s version %s not checked: %s", model, stable.version, exc)
        return ProbePlan(None)
    if not present:
        note = f"no golden set for version {stable.version}: prober idle"
        # One notice per rollout: the key names the model and the canary's start, so another
        # rollout of the same version numbers (another model, or the same one re-tried)
        # is told again.
        key = (target.namespace, target.name, model, stable.version, canary.version, since)
        return ProbePlan(None, note if memory.first_time(key) else "")
    block = {
        "since": since,
        "rate": policy.rate_per_second,
        "registry": redact_uri(target.registry_uri),
    }
    return ProbePlan(block)
