"""The operator/joiner contract: the inference-logger URL that names an arm.

The operator writes ``spec.predictor.logger.url`` (and the canary's) with
:func:`logger_url`; the joiner reads the same parameters back
(``modeldeploy.serving.joiner.events.Arm``). KServe's agent posts to the URL as configured,
query string included (KServe ``pkg/logger/worker.go:88-89``), and in Serverless mode each
revision keeps the logger block it was created with, so the URL is what tells the joiner
which deployment, role and registry version a logged prediction belongs to.
"""

from __future__ import annotations

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
