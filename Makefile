# Tollgate: `make` alone prints this help. `.ci/run` calls the same targets a developer does.
SHELL := /bin/bash
# A failing command fails its recipe even inside a pipeline (`pytest | tee` would hide it).
.SHELLFLAGS := -eu -o pipefail -c
UV ?= uv
PYTEST_ARGS ?=
# `make test` measures the product's code, the service processes the tests start included; the
# floor (fail_under in pyproject.toml) fails the run when a change drops coverage below it.
COVERAGE_ARGS ?= --cov --cov-report=term
TOOLS ?= $(HOME)/.cache/tollgate/tools/bin
KIND_CLUSTER ?= tollgate
RELEASE ?= tollgate
NAMESPACE ?= tollgate
TAG ?= dev
HELM_ARGS ?=
export PATH := $(TOOLS):$(PATH)

.DEFAULT_GOAL := help

##@ General

help: ## Show this help (colours only on a terminal, and not with NO_COLOR).
	@if [ -t 1 ] && [ -z "$${NO_COLOR:-}" ]; then c=$$'\033[36m' b=$$'\033[1m' r=$$'\033[0m'; else c= b= r=; fi; \
	awk -v c="$$c" -v b="$$b" -v r="$$r" 'BEGIN {FS = ":.*##"; printf "\nUsage:\n  make %s<target>%s\n", c, r} /^[a-zA-Z_-]+:.*?##/ { printf "  %s%-18s%s %s\n", c, $$1, r, $$2 } /^##@/ { printf "\n%s%s%s\n", b, substr($$0, 5), r } ' $(MAKEFILE_LIST)

# `make test` runs the installer only when the stamp is older than the installers or the lockfile
# (or gone: `make clean`, a fresh clone); `make install` always runs all of it (.ci/run does).
INSTALL_STAMP ?= .run/install$(if $(filter 1,$(TOLLGATE_SKIP_K8S_TOOLS)),-no-k8s).stamp

install: ## Install system servers, the Python workspace and the Kubernetes test binaries.
	bash hack/install.sh
	@mkdir -p $(dir $(INSTALL_STAMP)) && touch $(INSTALL_STAMP)

$(INSTALL_STAMP): hack/install.sh hack/k8s-tools.sh hack/cluster.sh uv.lock
	bash hack/install.sh
	@mkdir -p $(@D) && touch $@

##@ Development

run: ## Start the whole stack locally on 127.0.0.1 (RUN_ARGS='--host 0.0.0.0 --port-offset 100'); prints curl lines.
	@command -v redis-server >/dev/null || TOLLGATE_SKIP_K8S_TOOLS=1 bash hack/install.sh
	@command -v uv >/dev/null || python3 -m pip install -q uv
	@$(UV) sync --frozen --all-packages -q
	$(UV) run --frozen python -m tollgate_testkit.devstack $(RUN_ARGS)

test: $(INSTALL_STAMP) ## Run every test (unit, service, integration, Kubernetes, real pods) against real servers; installs once.
	@# containerd + dockerd for the real-pods tier and the testcontainers fixtures, where this
	@# host can run them (root, packages); stopped again after the run if this started them.
	@bash hack/cluster.sh runtime >/dev/null 2>&1 || echo "no container runtime: the real-pods and container tests will skip"
	rc=0; $(UV) run --frozen pytest $(COVERAGE_ARGS) $(PYTEST_ARGS) || rc=$$?; bash hack/cluster.sh runtime-down >/dev/null 2>&1; exit $$rc

test-integration: ## Run only the black-box tests of the whole stack.
	$(UV) run --frozen pytest tests/integration $(PYTEST_ARGS)

test-cluster: ## Run only the real-pods tier: a local single-node Kubernetes, the images as pods (root; TOLLGATE_CLUSTER_KEEP=1 keeps it up).
	$(UV) run --frozen pytest tests/cluster $(PYTEST_ARGS)

lint: ## ruff, mypy --strict and the import contracts (services never import each other).
	$(UV) run --frozen ruff check .
	$(UV) run --frozen ruff format --check .
	$(UV) run --frozen mypy libs/common/src libs/testkit/src services/gateway/src services/auth/src services/notifier/src services/operator/src
	$(UV) run --frozen lint-imports

fmt: ## Format and auto-fix.
	$(UV) run --frozen ruff format .
	$(UV) run --frozen ruff check --fix .

bench: ## Side-by-side benchmark: direct, nginx, Traefik, seed-style proxy, Tollgate.
	@command -v wrk >/dev/null && command -v nginx >/dev/null || TOLLGATE_SKIP_K8S_TOOLS=1 bash hack/install.sh
	@# oha (crates.io) for the fixed-rate p99: an open-loop loader in Rust; without it the bench
	@# falls back to bench/fixedrate.py, whose own jitter sets a ~1.4 ms p99 floor.
	@command -v oha >/dev/null || test -x $(HOME)/.cargo/bin/oha || ! command -v cargo >/dev/null \
		|| { echo "building oha with cargo (once, ~5 min)"; cargo install oha --locked -q; }
	$(UV) sync --frozen --all-packages --group bench -q
	$(UV) run --frozen --group bench python -m bench $(BENCH_ARGS)

##@ Kubernetes

images: ## Build the service images (one Dockerfile) and local/redis:7 (needs Docker; IMAGE_ARGS=--local-base without a registry).
	bash hack/images.sh $(IMAGE_ARGS)

cluster-up: ## Create a kind cluster (needs Docker with privileged containers).
	kind create cluster --name $(KIND_CLUSTER) --config deploy/kind/cluster.yaml

cluster-down: ## Delete the kind cluster.
	kind delete cluster --name $(KIND_CLUSTER)

# Exactly what `make images` builds (hack/images.sh --list): the kind values never pull.
KIND_IMAGES = $(shell TAG=$(TAG) bash hack/images.sh --list)

deploy: ## Load the images into the kind cluster, then helm upgrade --install --wait with the kind values.
	kind load docker-image --name $(KIND_CLUSTER) $(KIND_IMAGES)
	helm upgrade --install $(RELEASE) deploy/helm/tollgate -f deploy/kind/values.yaml \
		--set image.tag=$(TAG) --namespace $(NAMESPACE) --create-namespace --wait --timeout 5m $(HELM_ARGS)

clean: ## Remove local state (.run/, caches). Built Kubernetes binaries stay in ~/.cache/tollgate.
	rm -rf .run .pytest_cache .mypy_cache .ruff_cache

.PHONY: help install run test test-integration test-cluster lint fmt bench images cluster-up cluster-down deploy clean
