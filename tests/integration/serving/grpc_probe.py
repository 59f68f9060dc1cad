"""Run in a subprocess: score texts over gRPC with tritonclient.grpc and print JSON.

tritonclient.grpc and kserve both register ``inference.ServerLiveRequest`` with
protobuf, so they cannot share the test process.
"""

from __future__ import annotations

import json
import sys

import numpy as np
import tritonclient.grpc as grpcclient


def main(port: str, request_id: str, *texts: str) -> None:
    client = grpcclient.InferenceServerClient(f"127.0.0.1:{port}")
    assert client.is_server_ready()
    tensor = grpcclient.InferInput("text", [len(texts)], "BYTES")
    tensor.set_data_from_numpy(np.array([t.encode() for t in texts], dtype=np.object_))
    result = client.infer("classifier", [tensor], request_id=request_id)
    bad = grpcclient.InferInput("text", [1], "BYTES")
    bad.set_data_from_numpy(np.array([b"   "], dtype=np.object_))
    try:
        client.infer("classifier", [bad])
        bad_status = "OK"
    except grpcclient.InferenceServerException as exc:
        bad_status = str(exc.status())
    print(
        json.dumps(
            {
                "id": result.get_response().id,
                "labels": [x.decode() for x in result.as_numpy("label").tolist()],
                "probabilities": result.as_numpy("probabilities").tolist(),
                "model_version": result.get_response().model_version,
                "bad_status": bad_status,
            }
        )
    )


if __name__ == "__main__":
    main(*sys.argv[1:])
