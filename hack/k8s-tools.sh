#!/usr/bin/env bash
# Builds the real Kubernetes pieces the tests need from their Go modules:
#   control plane + node  kube-apiserver, kube-controller-manager, kube-scheduler, kubelet, kube-proxy,
#                         kubectl (one `go build` of k8s.io/kubernetes, so shared packages compile once)
#   etcd                  go.etcd.io/etcd/server/v3
#   helm                  helm.sh/helm/v3, stamped with its version and the Kubernetes minor it
#                         defaults to (without it `helm template` assumes v1.20 and the chart's
#                         kubeVersion refuses it)
#   coredns, crictl       cluster DNS as a host process; pod clean-up on teardown
#   jaeger-all-in-one     github.com/jaegertracing/jaeger/cmd/all-in-one (v1): the trace backend of
#                         tests/integration/test_tracing.py, OTLP in on 4317/4318, query API on 16686
#                         (the tests bind every port to loopback); cold build alone 25 min 28 s wall
#                         on 2 cores under load average ~15, 8 min 23 s CPU
# Why from source: no container registry and no release downloads on our CI machines, and Debian's
# etcd 3.4.23 breaks consistent watches on apiserver >= 1.31 (see ../shared/k8s-test-infra.md).
# Binaries are cached per version under $TOLLGATE_TOOLS (default ~/.cache/tollgate/tools), so a
# warm run costs nothing. A cold build of all of them (kube-apiserver, kube-controller-manager,
# kube-scheduler, kubelet, kube-proxy, kubectl, etcd, helm, coredns, crictl) measured 21 min 26 s
# on 2 shared cores; the README's quick start says the same.
# Go >= 1.26: the one on PATH, else Go $GO_TOOLCHAIN fetched from the Go module proxy with any older
# Go, installing Debian's golang-go first when root (ensure_go; `hack/k8s-tools.sh go` does only that).
set -euo pipefail

K8S_VERSION="${K8S_VERSION:-v1.36.3}"
ETCD_VERSION="${ETCD_VERSION:-v3.6.16}"
HELM_VERSION="${HELM_VERSION:-v3.21.4}"
COREDNS_VERSION="${COREDNS_VERSION:-v1.15.0}"
CRICTL_VERSION="${CRICTL_VERSION:-v1.34.0}"
KIND_VERSION="${KIND_VERSION:-v0.32.0}"
JAEGER_VERSION="${JAEGER_VERSION:-v1.76.0}"
KUBE_CMDS="kube-apiserver kube-controller-manager kube-scheduler kubelet kube-proxy kubectl"
ROOT="${TOLLGATE_TOOLS:-$HOME/.cache/tollgate/tools}"
BIN="$ROOT/bin"
mkdir -p "$BIN"
export CGO_ENABLED=0 GOFLAGS=-mod=mod

GO_MIN_MINOR=26
GO_TOOLCHAIN="${GO_TOOLCHAIN:-go1.26.11}" # fetched when the Go found is older than 1.$GO_MIN_MINOR

go_minor() { # go_minor GO: the minor version of that go binary (go1.26.8 -> 26), 0 if unknown
  local v
  v="$("$1" env GOVERSION 2>/dev/null || "$1" version 2>/dev/null | awk '{print $3}')"
  v="${v#go1.}"
  v="${v%%[!0-9]*}"
  echo "${v:-0}"
}

find_go() { # find_go [MINOR]: the first go binary of Go >= 1.MINOR: on PATH, the toolchain
  # fetched before, the go.dev tarball's place
  local g min="${1:-0}"
  for g in "$(command -v go 2>/dev/null)" "$ROOT/go/bin/go" /usr/local/go/bin/go; do
    [ -n "$g" ] && [ -x "$g" ] && [ "$(go_minor "$g")" -ge "$min" ] && { echo "$g"; return 0; }
  done
  return 1
}

fetch_toolchain() { # fetch_toolchain GO: Go $GO_TOOLCHAIN from the module proxy, with any Go >= 1.16
  # The toolchain is the module golang.org/toolchain, the one GOTOOLCHAIN=goX.Y.Z switches to;
  # `go mod download` fetches it with every Go that has modules, so it also works with Debian
  # bookworm's golang-go 1.19, which predates GOTOOLCHAIN (Go 1.21).
  local go="$1" os arch mod dir
  os="$(uname -s | tr '[:upper:]' '[:lower:]')"
  case "$(uname -m)" in x86_64) arch=amd64 ;; aarch64 | arm64) arch=arm64 ;; *) arch="$(uname -m)" ;; esac
  mod="golang.org/toolchain@v0.0.1-$GO_TOOLCHAIN.$os-$arch"
  log "fetching Go $GO_TOOLCHAIN ($mod) with $("$go" version | awk '{print $3}') from $("$go" env GOPROXY)"
  dir="$(cd "$ROOT" && GOFLAGS='' GOTOOLCHAIN=local "$go" mod download -json "$mod" \
    | python3 -c 'import json,sys; print(json.load(sys.stdin)["Dir"])')"
  # Module zips keep no file modes; the go command sets the execute bits on first use the same way.
  chmod -R u+x "$dir/bin" "$dir/pkg/tool"
  ln -sfn "$dir" "$ROOT/go"
}

go_help() {
  cat >&2 <<MSG
go: not found. The Kubernetes tools build from their Go modules and need Go >= 1.$GO_MIN_MINOR.
As root, this script installs Debian's golang-go and fetches Go $GO_TOOLCHAIN with it. Here, either:
  - install a Go (any version >= 1.16, e.g. sudo apt-get install golang-go) and run make test again:
    this script then fetches Go $GO_TOOLCHAIN from the Go module proxy into $ROOT/go;
  - or put Go >= 1.$GO_MIN_MINOR on PATH (https://go.dev/doc/install);
  - or skip the Kubernetes test tiers: TOLLGATE_SKIP_K8S_TOOLS=1 make test (they report as skipped).
MSG
}

ensure_go() { # puts Go >= 1.$GO_MIN_MINOR first on PATH, installing what it takes
  local go old
  if ! go="$(find_go "$GO_MIN_MINOR")"; then
    if ! old="$(find_go)"; then
      if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
        log "go not found: apt-get install golang-go (to fetch Go $GO_TOOLCHAIN with)"
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends golang-go >/dev/null
        old="$(find_go)" || { echo "golang-go installed no go command" >&2; exit 1; }
      else
        go_help
        exit 1
      fi
    fi
    fetch_toolchain "$old"
    go="$ROOT/go/bin/go"
  fi
  PATH="$(dirname "$go"):$PATH"
  export PATH
  # The Go we chose builds everything: no switch to another toolchain behind our back.
  export GOTOOLCHAIN=local
}

stamp_ok() { [ -x "$BIN/$1" ] && [ "$(cat "$BIN/.$1.version" 2>/dev/null)" = "$2" ]; }
stamp() { echo "$2" >"$BIN/.$1.version"; }
log() { echo ">> $(date +%T) $*"; }

build_helm() {
  stamp_ok helm "$HELM_VERSION-k$K8S_VERSION" && return 0
  log "building helm $HELM_VERSION"
  local minor ld="-s -w -X helm.sh/helm/v3/internal/version.version=$HELM_VERSION" p
  minor="$(echo "$K8S_VERSION" | cut -d. -f2)"
  for p in chartutil lint/rules; do
    ld="$ld -X helm.sh/helm/v3/pkg/$p.k8sVersionMajor=1 -X helm.sh/helm/v3/pkg/$p.k8sVersionMinor=$minor"
  done
  GOBIN="$BIN" go install -trimpath -ldflags "$ld" "helm.sh/helm/v3/cmd/helm@$HELM_VERSION"
  stamp helm "$HELM_VERSION-k$K8S_VERSION"
}

build_etcd() {
  stamp_ok etcd "$ETCD_VERSION" && return 0
  log "building etcd $ETCD_VERSION"
  local d="$ROOT/src/etcd-$ETCD_VERSION"
  mkdir -p "$d" && cd "$d"
  [ -f go.mod ] || go mod init local/etcd-bin >/dev/null 2>&1
  go get "go.etcd.io/etcd/server/v3@$ETCD_VERSION"
  go build -trimpath -ldflags "-s -w" -o "$BIN/etcd" go.etcd.io/etcd/server/v3
  stamp etcd "$ETCD_VERSION"
}

kube_wrapper_module() { # k8s.io/kubernetes replaces its staging modules with ./staging in its own
  # go.mod, which a dependent module ignores: generate the replace list from upstream's go.mod.
  local upstream minor="v0.${K8S_VERSION#v1.}" c
  upstream="$(go mod download -json "k8s.io/kubernetes@$K8S_VERSION" | python3 -c 'import json,sys; print(json.load(sys.stdin)["GoMod"])')"
  {
    printf 'module local/k8s-bins\n\ngo 1.26.0\n'
    grep -E '^godebug ' "$upstream" || true
    printf '\nrequire k8s.io/kubernetes %s\n\nreplace (\n' "$K8S_VERSION"
    grep -oE '^\s*k8s\.io/[a-z0-9-]+ => \./staging' "$upstream" | awk -v v="$minor" '{print "\t" $1 " => " $1 " " v}'
    echo ")"
  } >go.mod
  { printf '//go:build tools\n\npackage tools\n\n'; for c in $KUBE_CMDS; do echo "import _ \"k8s.io/kubernetes/cmd/$c\""; done; } >tools.go
  go mod tidy >/dev/null 2>&1 || go mod tidy
}

build_kube() {
  local c missing="" pkgs="" ld="-s -w" p minor
  for c in $KUBE_CMDS; do stamp_ok "$c" "$K8S_VERSION" || missing="$missing $c"; done
  [ -n "$missing" ] || return 0
  log "building$missing $K8S_VERSION"
  local d="$ROOT/src/k8s-$K8S_VERSION"
  mkdir -p "$d" && cd "$d"
  kube_wrapper_module
  minor="$(echo "$K8S_VERSION" | cut -d. -f2)"
  for p in k8s.io/client-go/pkg/version k8s.io/component-base/version; do
    ld="$ld -X $p.gitVersion=$K8S_VERSION -X $p.gitMajor=1 -X $p.gitMinor=$minor -X $p.gitTreeState=clean"
  done
  for c in $missing; do pkgs="$pkgs k8s.io/kubernetes/cmd/$c"; done
  # shellcheck disable=SC2086
  go build -trimpath -ldflags "$ld" -o "$BIN/" $pkgs
  for c in $missing; do stamp "$c" "$K8S_VERSION"; done
}

build_jaeger() {
  stamp_ok jaeger-all-in-one "$JAEGER_VERSION" && return 0
  log "building jaeger-all-in-one $JAEGER_VERSION"
  # Jaeger's go.mod has a replace directive, which `go install pkg@version` refuses: build it in a
  # wrapper module, as etcd above. Without the `ui` build tag the binary serves a placeholder page
  # instead of the UI bundle (not in the module); the query API the tests read is all there.
  local d="$ROOT/src/jaeger-$JAEGER_VERSION"
  mkdir -p "$d" && cd "$d"
  [ -f go.mod ] || go mod init local/jaeger-bin >/dev/null 2>&1
  go get "github.com/jaegertracing/jaeger@$JAEGER_VERSION"
  go build -trimpath -ldflags "-s -w" -o "$BIN/jaeger-all-in-one" github.com/jaegertracing/jaeger/cmd/all-in-one
  stamp jaeger-all-in-one "$JAEGER_VERSION"
}

build_go_tool() { # build_go_tool NAME VERSION MODULE_PATH
  stamp_ok "$1" "$2" && return 0
  log "building $1 $2"
  GOBIN="$BIN" go install -trimpath -ldflags "-s -w" "$3@$2"
  stamp "$1" "$2"
}

ensure_go
case "${1:-all}" in
  go) go version ;;
  jaeger) build_jaeger ;;
  kind) build_go_tool kind "$KIND_VERSION" sigs.k8s.io/kind ;;
  helm) build_helm ;;
  etcd) build_etcd ;;
  kube) build_kube ;;
  node) build_go_tool coredns "$COREDNS_VERSION" github.com/coredns/coredns
        build_go_tool crictl "$CRICTL_VERSION" sigs.k8s.io/cri-tools/cmd/crictl ;;
  all) (build_helm); (build_etcd); (build_kube); (build_jaeger); "$0" node ;;
  *) echo "usage: $0 [all|helm|etcd|kube|node|kind|jaeger|go]" >&2; exit 2 ;;
esac
log "tools in $BIN"
