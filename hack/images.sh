#!/usr/bin/env bash
# Builds Tollgate's images from the one Dockerfile, and optionally imports them into containerd.
#
#   hack/images.sh                  tollgate/{gateway,auth,notifier,operator,testkit}:$TAG on $BASE
#   hack/images.sh --local-base     first make local/python:3.11-slim from a Debian rootfs
#                                   (debootstrap + docker import) and local/redis:7 from Debian's
#                                   redis-server, for machines that reach no container registry
#   hack/images.sh --import         then `docker save | ctr -n k8s.io images import` (the kubelet's
#                                   image store when containerd is the runtime, hack/cluster.sh)
#
# The testkit image carries the demo upstream (python -m tollgate_testkit.upstream) for the
# in-cluster demo and the testcontainers fixtures.
set -euo pipefail
cd "$(dirname "$0")/.."

TAG="${TAG:-dev}"
BASE="${BASE:-python:3.11-slim}"
SERVICES="${SERVICES:-gateway auth notifier operator testkit}"
CTR_SOCK="${CTR_SOCK:-/run/containerd/containerd.sock}"
WORK="${TOLLGATE_IMAGE_WORK:-$HOME/.cache/tollgate/images}"
local_base=0 import=0
for a in "$@"; do
  case "$a" in
    --local-base) local_base=1 ;;
    --import) import=1 ;;
    *) echo "usage: $0 [--local-base] [--import]" >&2; exit 2 ;;
  esac
done
log() { echo ">> $(date +%T) $*"; }
have() { docker image inspect "$1" >/dev/null 2>&1; }

# The classic builder reads a Dockerfile with no frontend to pull; BuildKit would pull one.
build() { DOCKER_BUILDKIT=0 docker build -q "$@" >/dev/null; }

debian_rootfs() {
  have local/debian:bookworm && return 0
  log "debootstrap bookworm (minbase) for local/debian:bookworm"
  local mirror rootfs="$WORK/rootfs"
  mirror="$(awk '/^URIs:/{print $2; exit}' /etc/apt/sources.list.d/debian.sources 2>/dev/null || true)"
  rm -rf "$rootfs"; mkdir -p "$WORK"
  debootstrap --variant=minbase bookworm "$rootfs" "${mirror:-http://deb.debian.org/debian}" >"$WORK/debootstrap.log" 2>&1 \
    || { tail -20 "$WORK/debootstrap.log" >&2; exit 1; }
  rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/* "$rootfs"/usr/share/doc/* "$rootfs"/usr/share/man/*
  tar -C "$rootfs" -c . | docker import - local/debian:bookworm >/dev/null
  rm -rf "$rootfs"
}

local_python() {
  have local/python:3.11-slim && return 0
  log "local/python:3.11-slim (Debian's python3 3.11)"
  local d="$WORK/python"
  rm -rf "$d"; mkdir -p "$d/ca"
  # A TLS-intercepting egress proxy's CA, where the host trusts one, goes into the image too, and
  # SSL_CERT_FILE makes uv (its own roots by default) use the system store.
  cp /usr/local/share/ca-certificates/*.crt "$d/ca/" 2>/dev/null || true
  cat >"$d/Dockerfile" <<'DOCKERFILE'
FROM local/debian:bookworm
COPY ca/ /usr/local/share/ca-certificates/
RUN apt-get update && apt-get install -y --no-install-recommends python3 python3-venv python3-pip python-is-python3 ca-certificates \
 && ln -s /usr/bin/pip3 /usr/local/bin/pip && rm -f /usr/lib/python3.11/EXTERNALLY-MANAGED && update-ca-certificates \
 && apt-get clean && rm -rf /var/lib/apt/lists/* /usr/share/doc/* /usr/share/man/* /var/cache/apt/*.bin
ENV LANG=C.UTF-8 SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt PIP_CERT=/etc/ssl/certs/ca-certificates.crt
CMD ["python3"]
DOCKERFILE
  build -t local/python:3.11-slim "$d"
}

local_redis() {
  have local/redis:7 && return 0
  log "local/redis:7 (Debian's redis-server)"
  local d="$WORK/redis"
  rm -rf "$d"; mkdir -p "$d"
  # Like the official image: redis-server is the entrypoint and the chart passes only arguments.
  cat >"$d/Dockerfile" <<'DOCKERFILE'
FROM local/debian:bookworm
RUN apt-get update && apt-get install -y --no-install-recommends redis-server redis-tools \
 && apt-get clean && rm -rf /var/lib/apt/lists/* /usr/share/doc/* /usr/share/man/* /var/cache/apt/*.bin
USER 999:999
EXPOSE 6379
ENTRYPOINT ["redis-server"]
DOCKERFILE
  build -t local/redis:7 "$d"
}

if [ "$local_base" = 1 ]; then
  debian_rootfs; local_python; local_redis
  BASE=local/python:3.11-slim
fi

images=()
for s in $SERVICES; do
  log "tollgate/$s:$TAG on $BASE"
  build --build-arg "SERVICE=$s" --build-arg "BASE=$BASE" -t "tollgate/$s:$TAG" .
  images+=("tollgate/$s:$TAG")
done
[ "$local_base" = 1 ] && images+=(local/redis:7)

if [ "$import" = 1 ]; then
  log "importing ${images[*]} into containerd (k8s.io)"
  docker save "${images[@]}" | ctr --address "$CTR_SOCK" -n k8s.io images import - >/dev/null
fi
log "images: ${images[*]}"
