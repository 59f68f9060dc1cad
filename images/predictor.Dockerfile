# The kserve-python predictor (CPU): `modeldeploy serve`. The operator passes only
# arguments (--registry-uri ... --http-port 8080), so the entrypoint is the command.
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
# CPU torch from PyTorch's CPU index first, so the serving extra does not pull a CUDA build.
RUN pip install --no-cache-dir --index-url https://download.pytorch.org/whl/cpu torch==2.13.0 \
 && pip install --no-cache-dir -c requirements/lock.txt ".[serving]"

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
    MALLOC_ARENA_MAX=1
# The operator runs predictor pods as 65532 (kserve_manifests.CONTAINER_SECURITY).
USER 65532:65532
EXPOSE 8080
ENTRYPOINT ["modeldeploy", "serve"]
