"""The contract between the data plane (serving) and the control plane (operator).

Everything both sides must agree on, once: series and label names
(:mod:`.names`), latency buckets and warm-up (:mod:`.latency`), request ids, item ids
and label values (:mod:`.ids`), the bounded store behind feedback joins and pairing
(:mod:`.store`), and the predictor's command line (:mod:`.args`). Plain Python, stdlib
only: the operator image carries no torch or kserve.
"""

from modeldeploy.serving.contract.args import (
    DEFAULT_PAIRED_SHARE,
    PredictorOptions,
    parse_predictor_args,
    predictor_args,
)
from modeldeploy.serving.contract.ids import (
    MAX_REQUEST_ID_CHARS,
    REQUEST_ID_HEADER,
    RequestIdError,
    item_ids,
    label_index,
    label_matches,
    parse_item_id,
    parse_request_id,
    request_of,
)
from modeldeploy.serving.contract.latency import (
    DEFAULT_LATENCY_WARMUP_REQUESTS,
    LATENCY_BUCKET_RATIO,
    LATENCY_RESOLVABLE_TOLERANCE,
    latency_bucket_edges,
)
from modeldeploy.serving.contract.names import PAIRED_OUTCOMES, paired_outcome
from modeldeploy.serving.contract.store import BoundedStore

__all__ = [
    "DEFAULT_LATENCY_WARMUP_REQUESTS",
    "DEFAULT_PAIRED_SHARE",
    "LATENCY_BUCKET_RATIO",
    "LATENCY_RESOLVABLE_TOLERANCE",
    "MAX_REQUEST_ID_CHARS",
    "PAIRED_OUTCOMES",
    "REQUEST_ID_HEADER",
    "BoundedStore",
    "PredictorOptions",
    "RequestIdError",
    "item_ids",
    "label_index",
    "label_matches",
    "latency_bucket_edges",
    "paired_outcome",
    "parse_item_id",
    "parse_predictor_args",
    "parse_request_id",
    "predictor_args",
    "request_of",
]
