#!/usr/bin/env bash
# The kind workflow for users with Docker (kind needs privileged containers): build the images,
# create a kind cluster, load the images and helm install --wait (make deploy), helm test, then run
# the black-box cluster suite (tests/cluster) against the release; the cluster is deleted at the end.
#   hack/kind-e2e.sh            # all of it
#   KEEP=1 hack/kind-e2e.sh     # leave the cluster running (kind get kubeconfig --name tollgate)
set -euo pipefail
cd "$(dirname "$0")/.."
CLUSTER="${KIND_CLUSTER:-tollgate}"
RELEASE="${TOLLGATE_CLUSTER_RELEASE:-tollgate}"
NAMESPACE="${TOLLGATE_CLUSTER_NAMESPACE:-tollgate}"
export PATH="${TOLLGATE_TOOLS:-$HOME/.cache/tollgate/tools}/bin:$PATH"
command -v kind >/dev/null || bash hack/k8s-tools.sh kind
command -v helm >/dev/null || bash hack/k8s-tools.sh helm
command -v kubectl >/dev/null || bash hack/k8s-tools.sh kube

make images
sudo_() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }
# A kubeconfig of its own: the user's ~/.kube/config and current context stay as they were.
KUBECONFIG="$(mktemp)"
export KUBECONFIG
cleanup() {
  if [ "${KEEP:-0}" = 1 ]; then echo "kept: kind cluster $CLUSTER, KUBECONFIG=$KUBECONFIG"; return; fi
  for cidr in 10.96.0.0/16 10.244.0.0/16; do sudo_ ip route del "$cidr" 2>/dev/null || true; done
  kind delete cluster --name "$CLUSTER" || true
  rm -f "$KUBECONFIG"
}
trap cleanup EXIT
kind create cluster --name "$CLUSTER" --config deploy/kind/cluster.yaml
# The suite calls Services by ClusterIP and pods by pod IP, as it does on the local cluster where
# the host is the node: route kind's Service and pod ranges (its defaults) to the node container.
node_ip="$(docker inspect -f '{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}' "$CLUSTER-control-plane")"
for cidr in 10.96.0.0/16 10.244.0.0/16; do sudo_ ip route replace "$cidr" via "$node_ip"; done
# The suite's fault tests delete one of two gateway (and auth) replicas and wait for it to come back.
make deploy KIND_CLUSTER="$CLUSTER" RELEASE="$RELEASE" NAMESPACE="$NAMESPACE" \
  HELM_ARGS="--set gateway.replicas=2 --set auth.replicas=2 --set redis.persistence.enabled=true"
helm test "$RELEASE" --namespace "$NAMESPACE"
TOLLGATE_CLUSTER_PROVIDER=existing TOLLGATE_CLUSTER_RELEASE="$RELEASE" \
  TOLLGATE_CLUSTER_NAMESPACE="$NAMESPACE" uv run --frozen pytest tests/cluster
