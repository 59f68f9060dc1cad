# The kserve-python predictor for GPU nodes: the same as predictor.Dockerfile with a CUDA
# torch wheel. The wheel carries the CUDA runtime libraries (nvidia-* wheels); the node's
# driver comes in through the NVIDIA container toolkit (GPU Operator), so the base image
# needs no CUDA toolkit. The operator picks this image for spec.resources.gpu > 0.
# Build: make images (from the repository root).

FROM python:3.11.7-slim-bookworm AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
WORKDIR /src
COPY pyproject.toml README.md ./
COPY requirements/ requirements/
COPY operator/ operator/
COPY serving/ serving/
COPY registry/ registry/
RUN pip install --no-cache-dir --index-url https://download.pytorch.org/whl/cu126 torch==2.13.0 \
 && grep -v '^torch==' requirements/lock.txt > /tmp/constraints.txt \
 && pip install --no-cache-dir -c /tmp/constraints.txt ".[serving]"

FROM python:3.11.7-slim-bookworm
# MALLOC_ARENA_MAX=1: one malloc arena for every thread (docs/serving.md, "One malloc
# arena"); set here, the predictor need not start itself again to get it.
COPY --from=build /opt/venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH \
    HOME=/tmp \
    HF_HUB_OFFLINE=1 \
    TOKENIZERS_PARALLELISM=false \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    MALLOC_ARENA_MAX=1 \
    NVIDIA_VISIBLE_DEVICES=all \
    NVIDIA_DRIVER_CAPABILITIES=compute,utility
USER 65532:65532
EXPOSE 8080
ENTRYPOINT ["modeldeploy", "serve"]
