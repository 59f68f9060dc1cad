# The modeldeploy operator: kopf, the Kubernetes client, the MLflow client. No torch and no
# serving extra (the operator never loads a model), so the image stays small.
# Build: make images (from the repository root; the build context is the repository).

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
# The lock is a constraints file here: only what the operator extra asks for is installed.
RUN pip install --no-cache-dir -c requirements/lock.txt ".[operator]"

FROM python:3.11.7-slim-bookworm
COPY --from=build /opt/venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH \
    HOME=/tmp \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1
# The chart runs the pod as 10001 with a read-only root filesystem and /tmp as emptyDir.
USER 10001:10001
ENTRYPOINT ["modeldeploy"]
CMD ["operator", "run", "--standalone", "--all-namespaces"]
