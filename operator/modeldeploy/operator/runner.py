"""``modeldeploy operator run``: start kopf with our handlers (peering = leader election)."""

from __future__ import annotations

import asyncio


def run_operator(
    *,
    namespaces: list[str],
    all_namespaces: bool,
    standalone: bool,
    peering: str,
    liveness: str,
) -> int:
    import kopf

    import modeldeploy.operator.handlers.lifecycle
    import modeldeploy.operator.handlers.startup  # noqa: F401 - registers the handlers

    # A peering name makes peering mandatory in kopf, and standalone watches no peering
    # resource: both together pause every watch-stream forever ("peering CRD is missing").
    asyncio.run(
        kopf.operator(
            clusterwide=all_namespaces,
            namespaces=namespaces or (),
            standalone=standalone,
            peering_name=None if standalone else peering,
            priority=0,
            liveness_endpoint=liveness or None,
        )
    )
    return 0
