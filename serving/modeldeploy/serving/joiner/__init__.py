"""The joiner: one feedback service that records what each arm predicted and joins labels.

On KServe every predictor pod keeps its predictions in its own memory, so with more than
one replica, or a traffic split, a label cannot reach the pod that served the prediction
(and Triton has no feedback path at all). The joiner sits beside the InferenceServices:

- **Ingest** (:mod:`.events`, :mod:`.book`): KServe's inference logger (``spec.predictor.logger``,
  mode ``all``) posts a CloudEvent for every request and every 200 response of every
  replica, canary revision included. The logger URL names the arm (deployment, role,
  version: the operator writes them as query parameters). The joiner records, per item id,
  what each arm predicted (first write wins per id and arm), only for ids the platform
  signed, and keeps the request body for pairing.
- **Labels** (:mod:`.app`): ``POST /v1/feedback`` with the router's and predictors' contract
  and credential; the label is joined to every arm that scored the id, and
  ``modeldeploy_labelled_predictions_total`` / ``modeldeploy_paired_outcomes_total`` are
  exported for the analysis (``/metrics``).
- **Pairing on a cluster** (:mod:`.pairing`): a label for an item one of stable and canary
  scored has the other arm (its own revision URL) score the stored input, within a budget.

Run it as ``python -m modeldeploy.serving.joiner`` (docs/serving.md, "The joiner").
"""
