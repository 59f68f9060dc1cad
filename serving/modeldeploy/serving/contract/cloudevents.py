"""CloudEvents exactly as KServe's agent posts them to ``spec.predictor.logger.url``.

Shared by the local router (which acts as KServe's logger agent in local mode, so both
modes feed the joiner the same way) and the tests that stand in for KServe's agent.
From KServe's source at commit aaac4e29 (the version whose CRDs are in tests/upstream):

- ``pkg/logger/handler.go:115-208``: one event for the request (queued before the call,
  ``ce-type`` ``org.kubeflow.serving.inference.request``) and one for a 200 response
  (``...inference.response``), both with the same id (``getOrCreateID``: the request's
  ``Ce-Id`` header, else a new UUID, handler.go:210) and the *request's* Content-Type
  (handler.go:144, :188); the body is sent as it was;
- ``pkg/logger/worker.go:122-153``: CloudEvents 1.0, ``SetID``/``SetType``/``SetTime``,
  extensions ``recordedtime`` (a time), ``inferenceservicename``, ``namespace``,
  ``component``, ``endpoint``, ``metadata`` (JSON of the configured headers, ``{}`` when
  none), optional ``annotations``, source = ``--source-uri`` (the pod name,
  agent_injector.go:258), sent in *binary* mode (``WithEncodingBinary``) to the URL as
  configured (query included);
- CloudEvents' HTTP binding in sdk-go writes each attribute as a ``ce-<name>`` header, which
  Go's ``net/http`` canonicalises (``Ce-Inferenceservicename``); times are RFC 3339.
"""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass

REQUEST = "org.kubeflow.serving.inference.request"
RESPONSE = "org.kubeflow.serving.inference.response"


def _rfc3339(when: dt.datetime) -> str:
    return when.astimezone(dt.UTC).isoformat().replace("+00:00", "Z")


@dataclass(frozen=True)
class Agent:
    """One predictor pod's agent: its pod name, InferenceService, namespace and endpoint."""

    pod: str
    isvc: str = "demo"
    namespace: str = "default"
    endpoint: str = "default"
    component: str = "predictor"

    def headers(self, ce_type: str, ce_id: str, content_type: str) -> dict[str, str]:
        now = dt.datetime.now(dt.UTC)
        return {
            "Ce-Specversion": "1.0",
            "Ce-Id": ce_id,
            "Ce-Source": self.pod,
            "Ce-Type": ce_type,
            "Ce-Time": _rfc3339(now),
            "Ce-Recordedtime": _rfc3339(now),
            "Ce-Inferenceservicename": self.isvc,
            "Ce-Namespace": self.namespace,
            "Ce-Component": self.component,
            "Ce-Endpoint": self.endpoint,
            "Ce-Metadata": "{}",
            "Content-Type": content_type,
        }

    def events(
        self,
        request_body: bytes,
        response_body: bytes | None,
        ce_id: str | None = None,
        content_type: str = "application/json",
    ) -> list[tuple[dict[str, str], bytes]]:
        """(headers, body) of the request event and, for a 200 answer, the response event."""
        ce_id = ce_id or str(uuid.uuid4())
        out = [(self.headers(REQUEST, ce_id, content_type), request_body)]
        if response_body is not None:
            out.append((self.headers(RESPONSE, ce_id, content_type), response_body))
        return out
