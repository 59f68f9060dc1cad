"""The local (one-machine) router: weight split, shadow mirror, paired labels, feedback.

Run it as ``python -m modeldeploy.serving.router``; embed it with :func:`serve`.

The names below are imported on first use (PEP 562): a predictor imports
``router.responses`` for its error bodies, and must not pay for the router's aiohttp
client (about 0.3 s of CPU at start-up) to get them.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from modeldeploy.serving.router.app import Router, RouterConfig, serve
    from modeldeploy.serving.router.split import Split

__all__ = ["Router", "RouterConfig", "Split", "serve"]
_HOMES = {"Router": "app", "RouterConfig": "app", "serve": "app", "Split": "split"}


def __getattr__(name: str) -> Any:
    if name not in _HOMES:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(import_module(f"{__name__}.{_HOMES[name]}"), name)
