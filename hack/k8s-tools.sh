#!/usr/bin/env bash
# Builds the real Kubernetes pieces the integration tests need from their Go modules:
# kube-apiserver (k8s.io/kubernetes), etcd (go.etcd.io/etcd/server/v3) and helm (helm.sh/helm/v3).
# Why from source: no container registry and no release downloads on our CI machines, and Debian's
# etcd 3.4.23 breaks consistent watches on apiserver >= 1.31 (see ../shared/k8s-test-infra.md).
# Binaries are cached per version under $TOLLGATE_TOOLS (default ~/.cache/tollgate/tools), so a
# warm run costs nothing; a cold one takes ~15-25 min on 2 cores.
set -euo pipefail

K8S_VERSION="${K8S_VERSION:-v1.36.3}"
ETCD_VERSION="${ETCD_VERSION:-v3.6.16}"
HELM_VERSION="${HELM_VERSION:-v3.21.4}"
ROOT="${TOLLGATE_TOOLS:-$HOME/.cache/tollgate/tools}"
BIN="$ROOT/bin"
mkdir -p "$BIN"
export CGO_ENABLED=0 GOFLAGS=-mod=mod

stamp_ok() { [ -x "$BIN/$1" ] && [ "$(cat "$BIN/.$1.version" 2>/dev/null)" = "$2" ]; }
stamp() { echo "$2" > "$BIN/.$1.version"; }

build_helm() {
  stamp_ok helm "$HELM_VERSION" && return 0
  echo ">> building helm $HELM_VERSION"
  GOBIN="$BIN" go install -trimpath \
    -ldflags "-s -w -X helm.sh/helm/v3/internal/version.version=$HELM_VERSION" \
    "helm.sh/helm/v3/cmd/helm@$HELM_VERSION"
  stamp helm "$HELM_VERSION"
}

build_etcd() {
  stamp_ok etcd "$ETCD_VERSION" && return 0
  echo ">> building etcd $ETCD_VERSION"
  local d="$ROOT/src/etcd-$ETCD_VERSION"
  mkdir -p "$d" && cd "$d"
  [ -f go.mod ] || go mod init local/etcd-bin >/dev/null 2>&1
  go get "go.etcd.io/etcd/server/v3@$ETCD_VERSION"
  go build -trimpath -ldflags "-s -w" -o "$BIN/etcd" go.etcd.io/etcd/server/v3
  stamp etcd "$ETCD_VERSION"
}

build_kube() {
  stamp_ok kube-apiserver "$K8S_VERSION" && return 0
  echo ">> building kube-apiserver $K8S_VERSION"
  local d="$ROOT/src/k8s-$K8S_VERSION" minor="v0.${K8S_VERSION#v1.}"
  mkdir -p "$d" && cd "$d"
  # k8s.io/kubernetes requires its staging modules at v0.0.0 and replaces them with ./staging in its
  # own go.mod, which a dependent module ignores: generate the replace list from upstream's go.mod.
  local upstream
  upstream="$(GOFLAGS=-mod=mod go mod download -json "k8s.io/kubernetes@$K8S_VERSION" | python3 -c 'import json,sys; print(json.load(sys.stdin)["GoMod"])')"
  {
    echo "module local/k8s-bins"
    echo
    echo "go 1.26.0"
    grep -E '^godebug ' "$upstream" || true
    echo
    echo "require k8s.io/kubernetes $K8S_VERSION"
    echo
    echo "replace ("
    grep -oE '^\s*k8s\.io/[a-z0-9-]+ => \./staging' "$upstream" | awk -v v="$minor" '{print "\t" $1 " => " $1 " " v}'
    echo ")"
  } > go.mod
  printf 'package tools\n\nimport _ "k8s.io/kubernetes/cmd/kube-apiserver"\n' > tools.go
  go mod tidy >/dev/null 2>&1 || go mod tidy
  local ld="-s -w"
  for p in k8s.io/client-go/pkg/version k8s.io/component-base/version; do
    ld="$ld -X $p.gitVersion=$K8S_VERSION -X $p.gitMajor=1 -X $p.gitMinor=$(echo "$K8S_VERSION" | cut -d. -f2)"
  done
  go build -trimpath -ldflags "$ld" -o "$BIN/kube-apiserver" k8s.io/kubernetes/cmd/kube-apiserver
  stamp kube-apiserver "$K8S_VERSION"
}

KIND_VERSION="${KIND_VERSION:-v0.32.0}"
build_kind() {  # for users with Docker (hack/kind-e2e.sh); not needed by `make test`
  stamp_ok kind "$KIND_VERSION" && return 0
  GOBIN="$BIN" go install "sigs.k8s.io/kind@$KIND_VERSION"
  stamp kind "$KIND_VERSION"
}

case "${1:-all}" in
  kind) build_kind ;;
  helm) build_helm ;;
  etcd) build_etcd ;;
  kube) build_kube ;;
  all) (build_helm); (build_etcd); (build_kube) ;;
  *) echo "usage: $0 [all|helm|etcd|kube|kind]" >&2; exit 2 ;;
esac
echo ">> tools in $BIN"
