"""Triton model repositories for BERT-family classifiers: export, launch, classify.

- :func:`export_repository` writes a checkpoint as ``<repo>/<name>/<version>/`` for the
  Python backend (CPU; what the bundled tritonserver runs) or as a native onnxruntime
  ensemble (GPU clusters).
- :class:`TritonServer` runs the tritonserver shipped in nvidia-pytriton on loopback.
- :func:`classify` sends texts over HTTP with tritonclient.

Importing this package is cheap: torch, onnxruntime and tritonclient load on use.
"""

from modeldeploy.serving.triton.client import Classification, classify
from modeldeploy.serving.triton.config import Batching
from modeldeploy.serving.triton.export import ExportError, ExportResult, export_repository
from modeldeploy.serving.triton.server import TritonError, TritonServer

__all__ = [
    "Batching",
    "Classification",
    "ExportError",
    "ExportResult",
    "TritonError",
    "TritonServer",
    "classify",
    "export_repository",
]
