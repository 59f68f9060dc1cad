"""The router as KServe's logger agent: each answer it got, as CloudEvents, to the joiner.

In local mode the joiner (``python -m modeldeploy.serving.joiner``) joins labels to
predictions, as it does on KServe, so both modes have one feedback path. On KServe each
predictor pod's agent posts a request and a response event per call to the logger URL;
here the router posts the same two events (the same builder,
:mod:`modeldeploy.serving.contract.cloudevents`) for every call it made that an arm
answered with predictions: primary, share-paired and mirrored. The URL names the arm
(``contract/joiner.py`` ``logger_url``), with the version of the router's arms table
(``RouterConfig.versions``), as the operator writes each revision's own version into its
logger URL on KServe: an answer in the label view (``--response-detail label``) names
none, and the joiner never reads the version from a body.

Posting never slows or fails a prediction: it runs after the answer, in the background,
with at most ``max_in_flight`` posts at once and a short timeout; an event over that bound
is dropped and counted (``modeldeploy_router_logged_events_total{outcome}``), like a
failed post. The request event is sent before its response event, as KServe's agent
queues it first.
"""

from __future__ import annotations

import uuid

import aiohttp
from prometheus_client import CollectorRegistry, Counter

from modeldeploy.serving.contract.cloudevents import Agent
from modeldeploy.serving.contract.joiner import logger_url

LOGGED_EVENTS = "modeldeploy_router_logged_events_total"
LOG_OUTCOMES = ("sent", "dropped", "failed")
DEFAULT_MAX_IN_FLIGHT = 256
DEFAULT_LOG_TIMEOUT_S = 5.0


class EventLogger:
    """Posts (request, response) event pairs to ``<events_url>/v1/events?...``; bounded."""

    def __init__(
        self,
        events_url: str,
        deployment: str,
        registry: CollectorRegistry,
        max_in_flight: int = DEFAULT_MAX_IN_FLIGHT,
        timeout_s: float = DEFAULT_LOG_TIMEOUT_S,
    ) -> None:
        self.events_url = events_url.rstrip("/")
        self.deployment = deployment
        self.max_in_flight = max_in_flight
        self.timeout = aiohttp.ClientTimeout(total=timeout_s)
        self.in_flight = 0
        self._counter = Counter(
            LOGGED_EVENTS,
            "Inference-logger events the router posted to the joiner, by outcome "
            "(dropped: over the in-flight bound; failed: the joiner did not take it).",
            ["deployment", "outcome"],
            registry=registry,
        )
        for outcome in LOG_OUTCOMES:
            self._counter.labels(deployment, outcome)

    def admit(self) -> bool:
        """Take one in-flight slot (release it with :meth:`post`), or count a drop."""
        if self.in_flight >= self.max_in_flight:
            self._counter.labels(self.deployment, "dropped").inc(2)
            return False
        self.in_flight += 1
        return True

    async def post(
        self,
        session: aiohttp.ClientSession,
        role: str,
        version: str,
        request_body: bytes,
        response_body: bytes,
        content_type: str,
    ) -> None:
        """Post one call's two events (after :meth:`admit`); never raises."""
        url = logger_url(self.events_url, self.deployment, role, version or "unknown")
        agent = Agent(pod=f"router-{role}", isvc=self.deployment, namespace="local")
        events = agent.events(request_body, response_body, str(uuid.uuid4()), content_type)
        try:
            for headers, body in events:
                outcome = "failed"
                try:
                    async with session.post(
                        url, data=body, headers=headers, timeout=self.timeout
                    ) as answer:
                        await answer.read()
                        outcome = "sent" if answer.status < 300 else "failed"
                except (TimeoutError, aiohttp.ClientError):
                    pass
                self._counter.labels(self.deployment, outcome).inc()
        finally:
            self.in_flight -= 1
