"""The Kubernetes API calls the operator makes, as RBAC rules (the chart renders these).

Derived from the code paths: kopf watches ModelDeployments (list, watch), patches them
(finalizer, its progress annotations) and their status subresource, and posts Events;
the KServe platform gets, creates and replaces InferenceServices (``platforms/kserve.py``,
``delete`` for ``clean_up``); the registry watcher pokes ModelDeployments with a patch
(``handlers/registry_events.py``). A test checks this list against every call the
operator made in the kopf integration run against the emulator.
"""

from __future__ import annotations

RULES: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    ("modeldeploy.io", "modeldeployments", ("list", "watch", "patch")),
    ("modeldeploy.io", "modeldeployments/status", ("patch",)),
    ("serving.kserve.io", "inferenceservices", ("get", "create", "update", "delete")),
    ("", "events", ("create",)),
)
# Not exercised by the kopf integration run (clean_up is not called by a tick).
NOT_EXERCISED: frozenset[tuple[str, str, str]] = frozenset(
    {("serving.kserve.io", "inferenceservices", "delete")}
)


def cluster_role_rules() -> list[dict[str, list[str]]]:
    """The rules as a ClusterRole's ``rules`` list."""
    return [
        {"apiGroups": [group], "resources": [resource], "verbs": sorted(verbs)}
        for group, resource, verbs in RULES
    ]


def allowed() -> frozenset[tuple[str, str, str]]:
    return frozenset((g, r, v) for g, r, verbs in RULES for v in verbs)
