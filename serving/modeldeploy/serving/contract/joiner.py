"""The operator/joiner contract: the inference-logger URL that names an arm.

The operator writes ``spec.predictor.logger.url`` (and the canary's) with
:func:`logger_url`; the joiner reads the same parameters back
(``modeldeploy.serving.joiner.events.Arm``). KServe's agent posts to the URL as configured,
query string included (KServe ``pkg/logger/worker.go:88-89``), and in Serverless mode each
revision keeps the logger block it was created with, so the URL is what tells the joiner
which deployment, role and registry version a logged prediction belongs to.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlencode

EVENTS_PATH = "/v1/events"
DEPLOYMENT_PARAM = "deployment"
ROLE_PARAM = "role"
VERSION_PARAM = "version"
DEFAULT_EVENTS_PORT = 8081
DEFAULT_LABELS_PORT = 8080


def logger_url(base: str, deployment: str, role: str, version: str) -> str:
    """``<base>/v1/events?deployment=..&role=..&version=..`` (values URL-encoded)."""
    query = urlencode({DEPLOYMENT_PARAM: deployment, ROLE_PARAM: role, VERSION_PARAM: version})
    return f"{base.rstrip('/')}{EVENTS_PATH}?{query}"


# The arms the joiner pairs on (``modeldeploy.serving.joiner.pairing``): while a deployment
# has a canary, the operator's KServe platform merge-patches one key of the joiner's arms
# ConfigMap, ``arms_key(namespace, name)``, whose value is ``arms_entry(...)``, and sets it
# to null (removes it) when the rollout ends. The kubelet mounts each key as a file of one
# directory, which the joiner reads whole (every ``*.json``): one key per deployment, so
# operators of different namespaces never overwrite each other.
ARMS_SUFFIX = ".json"


def arms_key(namespace: str, name: str) -> str:
    """``<namespace>.<name>.json``: a valid ConfigMap key (DNS names, dots), one per deployment."""
    return f"{namespace}.{name}{ARMS_SUFFIX}"


def arms_entry(
    deployment: str,
    model: str,
    arms: dict[str, tuple[str, str]],
    probe: Mapping[str, Any] | None = None,
) -> str:
    """The arms file content for one deployment: ``arms`` maps role -> (base URL, version).

    ``probe`` (``{"since": epoch s, "rate": probes/s, "registry": URI}``) asks the prober
    to probe this rollout with the stable version's golden set (``serving/prober/arms.py``);
    the joiner ignores it.
    """
    entry: dict[str, Any] = {
        "model": model,
        "arms": {role: {"url": url, "version": v} for role, (url, v) in arms.items()},
    }
    if probe is not None:
        entry["probe"] = dict(probe)
    body = {"deployments": {deployment: entry}}
    return json.dumps(body, sort_keys=True, separators=(",", ":"))
