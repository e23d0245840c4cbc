#!/usr/bin/env bash
# The kind workflow for users with Docker (privileged containers): build the images, create a kind
# cluster, load the images, helm install, run the Kubernetes tests against it, tear down.
#   hack/kind-e2e.sh            # all of it
#   KEEP=1 hack/kind-e2e.sh     # leave the cluster running
set -euo pipefail
cd "$(dirname "$0")/.."
CLUSTER=tollgate
export PATH="${TOLLGATE_TOOLS:-$HOME/.cache/tollgate/tools}/bin:$PATH"
command -v kind >/dev/null || bash hack/k8s-tools.sh kind
command -v helm >/dev/null || bash hack/k8s-tools.sh helm
make images
kind create cluster --name "$CLUSTER" --config deploy/kind/cluster.yaml
trap '[ "${KEEP:-0}" = 1 ] || kind delete cluster --name "$CLUSTER"' EXIT
for s in gateway auth notifier operator; do kind load docker-image --name "$CLUSTER" "tollgate/$s:dev"; done
KUBECONFIG_FILE="$(mktemp)"
kind get kubeconfig --name "$CLUSTER" > "$KUBECONFIG_FILE"
export KUBECONFIG="$KUBECONFIG_FILE"
helm upgrade --install tollgate deploy/helm/tollgate -f deploy/kind/values.yaml \
  --namespace tollgate --create-namespace --wait --timeout 5m
helm test tollgate --namespace tollgate
kubectl apply -f deploy/samples/eod.yaml
# The same tests that run against a local kube-apiserver in CI, now against the kind cluster.
TOLLGATE_TEST_KUBECONFIG="$KUBECONFIG_FILE" uv run --frozen pytest -m kube tests/integration
