"""Which arm serves a request: the weight split, the paired share and score-both (pure).

The draws come from an injected ``random.Random`` so tests can seed it; with a seed the
split over N requests is reproducible, and without one each router process differs.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, replace
from typing import Any

STABLE, CANARY, SHADOW = "stable", "canary", "shadow"


@dataclass(frozen=True)
class Split:
    """Percent of primary traffic to the canary, and percent of that also scored by stable."""

    canary: float = 0.0
    paired_share: float = 0.0

    def __post_init__(self) -> None:
        for name in ("canary", "paired_share"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise ValueError(f"{name} must be a number between 0 and 100")
            if not 0.0 <= float(value) <= 100.0:
                raise ValueError(f"{name} must be between 0 and 100, got {value}")

    @property
    def stable(self) -> float:
        return 100.0 - self.canary

    def as_dict(self) -> dict[str, float]:
        return {"stable": self.stable, "canary": self.canary, "paired_share": self.paired_share}

    def updated(self, body: Any) -> Split:
        """A new split from a ``PUT /router/weights`` body; raises ValueError when invalid.

        Accepts ``{"canary": 25}``, ``{"stable": 75}`` (the canary gets the rest) and an
        optional ``"paired_share"``; giving both weights requires that they sum to 100.
        """
        if not isinstance(body, dict) or not body:
            raise ValueError('expected a JSON object such as {"canary": 25}')
        unknown = set(body) - {"stable", "canary", "paired_share"}
        if unknown:
            raise ValueError(f"unknown fields {sorted(unknown)}")
        changes: dict[str, float] = {}
        if "canary" in body:
            changes["canary"] = body["canary"]
        if "stable" in body:
            stable = Split(canary=body["stable"]).canary  # validates the range
            if "canary" in body and abs(stable + float(body["canary"]) - 100.0) > 1e-9:
                raise ValueError("stable and canary weights must sum to 100")
            changes["canary"] = 100.0 - stable
        if "paired_share" in body:
            changes["paired_share"] = body["paired_share"]
        return replace(self, **changes)


def _url(value: Any, name: str) -> str:
    if not isinstance(value, str) or not value.startswith(("http://", "https://")):
        raise ValueError(f"{name} must be a base URL such as http://127.0.0.1:8080")
    return value.rstrip("/")


def arms_update(urls: dict[str, str], split: Split, body: Any) -> tuple[dict[str, str], Split]:
    """The arms and split after a ``PUT /router/arms`` body; raises ValueError when invalid.

    ``{"stable": URL, "canary": URL | null, "weight": 50, "paired_share": 100}``: stable is
    required, a null or missing canary removes it (and its weight drops to 0), and the
    shadow arm, if any, is kept. ``weight`` and ``paired_share`` default to the current ones.
    """
    if not isinstance(body, dict) or "stable" not in body:
        raise ValueError('expected {"stable": URL, "canary": URL or null, "weight": N}')
    unknown = set(body) - {"stable", "canary", "weight", "paired_share", *VERSION_KEYS}
    if unknown:
        raise ValueError(f"unknown fields {sorted(unknown)}")
    new = {STABLE: _url(body["stable"], "stable")}
    if body.get("canary") is not None:
        new[CANARY] = _url(body["canary"], "canary")
    if SHADOW in urls:
        new[SHADOW] = urls[SHADOW]
    weight = body.get("weight", split.canary) if CANARY in new else 0.0
    if CANARY not in new and body.get("weight"):
        raise ValueError("a weight needs a canary")
    return new, Split(weight, body.get("paired_share", split.paired_share))


VERSION_KEYS = ("stable_version", "canary_version")
"""Optional keys of a ``PUT /router/arms`` body: the version each arm serves."""


def versions_update(
    versions: dict[str, str], old: dict[str, str], new: dict[str, str], body: dict[str, Any]
) -> dict[str, str]:
    """The arms' versions after a ``PUT /router/arms`` body that :func:`arms_update` turned
    ``old`` URLs into ``new``: a given ``<role>_version`` is that arm's; an arm at the same
    URL keeps its version; an arm at a new URL without one has none (it is another model
    server now); a removed arm drops out. Raises ValueError for a malformed version."""
    out = {}
    for role, url in new.items():
        given = body.get(f"{role}_version")
        if given is not None:
            if not isinstance(given, str) or not given.strip():
                raise ValueError(f"{role}_version must be a non-empty string")
            out[role] = given.strip()
        elif old.get(role) == url and role in versions:
            out[role] = versions[role]
    return out


def choose_role(split: Split, rng: random.Random) -> str:
    """``canary`` with probability canary%, else ``stable``."""
    return CANARY if rng.random() * 100.0 < split.canary else STABLE


def also_score_on_stable(split: Split, role: str, rng: random.Random) -> bool:
    """Whether stable should also score a canary request (for paired labels)."""
    return role == CANARY and rng.random() * 100.0 < split.paired_share


def both_arms_order(split: Split, role: str, rng: random.Random) -> list[str]:
    """Score-both mode: the two arms to send a request to, in the order they are called.

    Both stable and the canary score every request while the canary has weight; ``role``
    (the split's choice) only decides whose answer the client gets. The order is drawn per
    request, so neither arm is systematically the one whose call goes out first (on one
    machine that is the one that tends to get the CPU first). At weight 0 the canary is out
    of the stream, as it is in the split: only ``role`` (stable) is called.
    """
    if split.canary <= 0:
        return [role]
    order = [STABLE, CANARY]
    rng.shuffle(order)
    return order
