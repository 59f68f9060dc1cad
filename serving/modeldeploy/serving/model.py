"""The KServe model: parse -> dynamic batch (tokenize, forward, softmax) -> shape, per request.

Only parsing and shaping happen on the event loop; tokenization, the forward passes and
the softmax (once per batch, :func:`codecs.score_rows`) run in the batcher's inference
thread (:mod:`batcher`), so the loop stays free to accept and answer requests while the
model computes.

``preprocess`` / ``predict`` / ``postprocess`` serve v1, v2 REST and v2 gRPC alike, run
as kserve's ``Model.__call__`` runs them (the predict verb through :mod:`stages`, which
observes kserve's stage histograms without its per-request lookups); everything
protocol-specific is in :mod:`codecs`, every collector in :mod:`metrics`, and the forward
pass behind a :class:`Backend`.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, replace
from typing import Any

from kserve import Model
from kserve.model import InferenceVerb
from kserve.protocol.infer_type import InferOutput, InferRequest, InferResponse
from prometheus_client import REGISTRY, CollectorRegistry, Counter

from modeldeploy.serving import codecs
from modeldeploy.serving.backends.base import Backend
from modeldeploy.serving.batcher import DynamicBatcher
from modeldeploy.serving.config import ServeConfig
from modeldeploy.serving.contract import names
from modeldeploy.serving.errors import BadInput, NanOutput
from modeldeploy.serving.feedback import PredictionStore
from modeldeploy.serving.loading import Checkpoint
from modeldeploy.serving.metrics import ArmMetrics
from modeldeploy.serving.per_registry import PerRegistry
from modeldeploy.serving.stages import StageTimers, run_predict

log = logging.getLogger(__name__)

V2_DATATYPES = {
    "label": "BYTES",
    "label_index": "INT64",
    "probabilities": "FP32",
    "truncated": "BOOL",
}


_SHED = PerRegistry(
    lambda registry: Counter(
        names.SHED_REQUESTS,
        "Requests refused (503, Retry-After) because the inference queue was full.",
        names.COMMON_LABELS,
        registry=registry,
    )
)


def shed_counter(registry: CollectorRegistry = REGISTRY) -> Counter:
    """``modeldeploy_shed_requests_total`` in ``registry`` (created once per registry)."""
    return _SHED(registry)


@dataclass
class _Work:
    """What flows from preprocess to postprocess for one request."""

    request: codecs.ParsedRequest
    encoded: list[codecs.Encoded] | None = None
    predictions: list[codecs.Prediction] | None = None


class TextClassifier(Model):
    def __init__(
        self,
        config: ServeConfig,
        checkpoint: Checkpoint,
        encoder: codecs.TextEncoder,
        backend: Backend,
        metrics: ArmMetrics,
        labels: list[str],
        store: PredictionStore,
        model_version: str,
    ) -> None:
        super().__init__(config.name, return_response_headers=True)
        self.config = config
        self.checkpoint = checkpoint
        self.encoder = encoder
        self.backend = backend
        self.metrics = metrics
        self.labels = labels
        self.store = store
        self.model_version = model_version
        self._stage_timers = StageTimers.for_model(self.name)  # kserve's, bound once
        shed = shed_counter().labels(config.deployment, model_version, config.role)
        self.batcher = DynamicBatcher(
            metrics.timed_forward(backend.logits),
            encoder.pad_id,
            config.batching,
            on_batch=metrics.batch_size.observe,
            on_pass=metrics.forward_pass_duration.observe,
            # Failures are counted per reason as they are found (in the inference thread).
            encode=lambda texts: encoder.encode(texts, metrics.tokenization_failure),
            on_shed=shed.inc,
            packs=bool(getattr(backend, "packs", False)),
            finish=codecs.score_rows,  # softmax and argmax per batch, in the inference thread
        )
        self.ready = True

    def load(self) -> bool:  # everything is loaded in the constructor (see server.build)
        self.ready = True
        return True

    def stop(self) -> None:
        self.batcher.close()
        super().stop()

    async def __call__(
        self,
        body: Any,
        headers: dict[str, str] | None = None,
        verb: InferenceVerb = InferenceVerb.PREDICT,
    ) -> Any:
        """gRPC has no ASGI middleware, so its latency and outcome are recorded here."""
        if not (isinstance(body, InferRequest) and body.from_grpc):
            return await self._call(body, headers, verb)
        started, outcome = time.perf_counter(), "error"
        try:
            result = await self._call(body, headers, verb)
            outcome = "ok"
            return result
        except BadInput:
            outcome = "bad_input"
            raise
        finally:
            self.metrics.observe_request("grpc", outcome, time.perf_counter() - started)

    async def _call(self, body: Any, headers: dict[str, str] | None, verb: InferenceVerb) -> Any:
        """The predict verb through :func:`stages.run_predict` (kserve's stages and
        histograms, less its per-request lookups); any other verb through kserve."""
        if verb is not InferenceVerb.PREDICT:
            return await super().__call__(body, headers, verb)
        return await run_predict(self, self._stage_timers, body, headers)

    def validate(self, payload: Any) -> Any:
        return payload  # codecs.parse_* already validated it

    async def preprocess(self, payload: Any, headers: dict[str, str] | None = None) -> _Work:
        limits = (self.config.max_instances, self.encoder.policy)
        if isinstance(payload, InferRequest):
            request = codecs.parse_v2(payload, headers, *limits)
        else:
            request = codecs.parse_v1(payload, headers, *limits)
        # With authentication the platform, not the client, names the prediction.
        assigned = self.store.assign_id(request.request_id, headers)
        if assigned != request.request_id:
            request = replace(request, request_id=assigned)
        return _Work(request)  # tokenized in the batcher's inference thread

    async def predict(
        self,
        payload: _Work,
        headers: dict[str, str] | None = None,
        response_headers: dict[str, str] | None = None,
    ) -> _Work:
        encoded, rows = await self.batcher.submit_texts(payload.request.texts)
        payload.encoded = encoded
        try:
            scored = codecs.require_finite(rows)
        except NanOutput:
            self.metrics.nan_outputs.inc()
            log.error("NaN logits for request %s", payload.request.request_id)
            raise
        ids = codecs.item_ids(payload.request.request_id, len(encoded))
        predictions = codecs.make_predictions(scored, encoded, self.labels, ids)
        for prediction in predictions:
            self.store.put(prediction.item_id, prediction.label_index)
            self.metrics.observe_prediction(prediction.label, max(prediction.probabilities))
            self.metrics.input_tokens.observe(prediction.tokens)
            if prediction.truncated:
                self.metrics.truncated_inputs.inc()
        payload.predictions = predictions
        if response_headers is not None:
            response_headers[codecs.REQUEST_ID_HEADER] = payload.request.request_id
        return payload

    async def postprocess(
        self,
        result: _Work,
        headers: dict[str, str] | None = None,
        response_headers: dict[str, str] | None = None,
    ) -> dict[str, Any] | InferResponse:
        request, predictions = result.request, result.predictions or []
        policy = self.encoder.policy
        full = self.config.response_detail == codecs.FULL_DETAIL or self._platform(headers)
        if request.protocol == "v1":
            if not full:  # the client's view: nothing that tells the arms apart
                return codecs.v1_label_response(predictions, self.labels, request, self.name)
            return codecs.v1_response(
                predictions, self.labels, request, self.name, self.model_version, policy
            )
        if full:
            arrays = codecs.v2_output_arrays(predictions)
            parameters = codecs.v2_parameters(predictions, self.model_version, policy)
        else:
            arrays = codecs.v2_label_arrays(predictions)
            parameters = codecs.v2_label_parameters(self.labels)
        outputs = []
        for name, array in arrays.items():
            output = InferOutput(name, list(array.shape), V2_DATATYPES[name])
            output.set_data_from_numpy(array, binary_data=request.binary_outputs)
            outputs.append(output)
        return InferResponse(
            response_id=request.request_id,
            model_name=self.name,
            model_version=self.model_version if full else None,
            infer_outputs=outputs,
            parameters=parameters,
            use_binary_outputs=request.binary_outputs,
        )

    def _platform(self, headers: dict[str, str] | None) -> bool:
        """Whether the caller holds the platform's control token (the joiner re-scoring an
        input, whose version check needs the version): it gets the full view. A client
        never holds that token; without authentication nobody is trusted."""
        auth = getattr(self, "auth", None)  # set by server.build after construction
        if auth is None or not headers:
            return False
        if "authorization" not in headers and "Authorization" not in headers:
            return False
        return auth.admit_control(headers) is None

    def get_input_types(self) -> list[dict[str, Any]]:
        return [{"name": "text", "datatype": "BYTES", "shape": [-1]}]

    def get_output_types(self) -> list[dict[str, Any]]:
        n = len(self.labels)
        label = [
            {"name": "label", "datatype": "BYTES", "shape": [-1]},
            {"name": "label_index", "datatype": "INT64", "shape": [-1]},
        ]
        if self.config.response_detail != codecs.FULL_DETAIL:
            return label  # metadata describes the answer the client gets
        return [
            *label,
            {"name": "probabilities", "datatype": "FP32", "shape": [-1, n]},
            {"name": "truncated", "datatype": "BOOL", "shape": [-1]},
        ]
