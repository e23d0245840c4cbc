# Tollgate: `make` alone prints this help. `.ci/run` calls the same targets a developer does.
SHELL := /bin/bash
UV ?= uv
PYTEST_ARGS ?=
TOOLS ?= $(HOME)/.cache/tollgate/tools/bin
export PATH := $(TOOLS):$(PATH)

.DEFAULT_GOAL := help

##@ General

help: ## Show this help.
	@awk 'BEGIN {FS = ":.*##"; printf "\nUsage:\n  make \033[36m<target>\033[0m\n"} /^[a-zA-Z_-]+:.*?##/ { printf "  \033[36m%-18s\033[0m %s\n", $$1, $$2 } /^##@/ { printf "\n\033[1m%s\033[0m\n", substr($$0, 5) } ' $(MAKEFILE_LIST)

install: ## Install system servers, the Python workspace and the Kubernetes test binaries.
	bash hack/install.sh

##@ Development

run: ## Start the whole stack locally on 127.0.0.1 (RUN_ARGS='--host 0.0.0.0 --port-offset 100'); prints curl lines.
	@command -v redis-server >/dev/null || TOLLGATE_SKIP_K8S_TOOLS=1 bash hack/install.sh
	@command -v uv >/dev/null || python3 -m pip install -q uv
	@$(UV) sync --frozen --all-packages -q
	$(UV) run --frozen python -m tollgate_testkit.devstack $(RUN_ARGS)

test: install ## Run every test (unit, service, integration, Kubernetes) against real servers.
	$(UV) run --frozen pytest $(PYTEST_ARGS)

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

images: ## Build the service images from the one Dockerfile (needs a Docker engine; IMAGE_ARGS=--local-base without a registry).
	bash hack/images.sh $(IMAGE_ARGS)

cluster-up: ## Create a kind cluster (needs Docker with privileged containers).
	kind create cluster --name tollgate --config deploy/kind/cluster.yaml

cluster-down: ## Delete the kind cluster.
	kind delete cluster --name tollgate

deploy: ## helm install the chart into the current cluster with the kind values.
	helm upgrade --install tollgate deploy/helm/tollgate -f deploy/kind/values.yaml --wait

clean: ## Remove local state (.run/, caches). Built Kubernetes binaries stay in ~/.cache/tollgate.
	rm -rf .run .pytest_cache .mypy_cache .ruff_cache

.PHONY: help install run test test-integration test-cluster lint fmt bench images cluster-up cluster-down deploy clean
