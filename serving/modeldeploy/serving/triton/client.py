"""Classify texts against a Triton model over HTTP (``tritonclient.http``, in-process).

``tritonclient.grpc`` must not be imported here: it clashes with kserve's protobuf
registrations in one process (NOTES.md), and callers of this module often import kserve.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Classification:
    labels: list[str]
    probabilities: np.ndarray | None  # (n, num_labels) float32; None in the label view
    model_version: str
    label_indexes: list[int] | None = None  # None from a repository exported without it


def classify(
    url: str,
    model: str,
    texts: Sequence[str],
    *,
    version: int | None = None,
    batch_size: int = 64,
    timeout: float = 60.0,
) -> Classification:
    """Send ``texts`` in requests of ``batch_size`` rows; concatenate the answers."""
    import tritonclient.http as httpclient

    host = url.removeprefix("http://").rstrip("/")
    client = httpclient.InferenceServerClient(
        host, connection_timeout=timeout, network_timeout=timeout
    )
    labels: list[str] = []
    chunks: list[np.ndarray] = []
    indexes: list[int] = []
    served = ""
    try:
        for start in range(0, len(texts), batch_size):
            batch = np.array(
                [[t.encode("utf-8")] for t in texts[start : start + batch_size]], dtype=np.object_
            )
            tensor = httpclient.InferInput("TEXT", list(batch.shape), "BYTES")
            tensor.set_data_from_numpy(batch, binary_data=True)
            outputs = [  # PROBABILITIES comes back in the full view only
                httpclient.InferRequestedOutput(name, binary_data=True)
                for name in ("LABEL", "LABEL_INDEX", "PROBABILITIES")
            ]
            result = client.infer(
                model, [tensor], model_version=str(version or ""), outputs=outputs
            )
            labels.extend(v.decode("utf-8") for v in result.as_numpy("LABEL").reshape(-1))
            if (probabilities := result.as_numpy("PROBABILITIES")) is not None:
                chunks.append(probabilities)
            if (found := result.as_numpy("LABEL_INDEX")) is not None:
                indexes.extend(int(i) for i in found.reshape(-1))
            served = str(result.get_response().get("model_version", ""))
    finally:
        client.close()
    scores = np.concatenate(chunks) if chunks else None
    if not texts:
        scores = np.zeros((0, 0), np.float32)
    return Classification(labels, scores, served, indexes if len(indexes) == len(labels) else None)
