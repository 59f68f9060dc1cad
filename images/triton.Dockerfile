# Triton predictors: NVIDIA's Triton Inference Server plus the Python packages the
# exported model repository's Python backend model (serving/modeldeploy/serving/triton/
# backend_model.py) imports: numpy, tokenizers, onnxruntime. KServe's Triton
# ServingRuntime supplies the command (tritonserver ...), so no ENTRYPOINT is set here.
# Build: make images (from the repository root). The base image is about 15 GB.

FROM nvcr.io/nvidia/tritonserver:24.08-py3
RUN pip install --no-cache-dir "numpy<2" tokenizers==0.23.3 onnxruntime-gpu==1.19.2
# The base image's unprivileged user (triton-server); runs as non-root on the cluster.
USER 1000:1000
