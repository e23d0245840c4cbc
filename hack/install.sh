#!/usr/bin/env bash
# Installs what Tollgate's tests and `make run` need on a fresh Debian machine, idempotently:
# system servers (redis-server, nginx, wrk, and Debian's prometheus package for promtool and the
# Prometheus the alert tests run) and shellcheck (tests/test_kind.py) from apt, uv from PyPI, the
# Python workspace, and, for the Kubernetes tests, the node's binaries built from their Go modules
# (hack/k8s-tools.sh, which also brings Go >= 1.26: Debian's golang-go when root, then Go 1.26 from
# the Go module proxy) and the container runtime packages of the real-pods tier (hack/cluster.sh
# deps). TOLLGATE_SKIP_K8S_TOOLS=1 skips Go, the Kubernetes binaries and the runtime packages.
set -euo pipefail
cd "$(dirname "$0")/.."

need=()
for bin in redis-server:redis-server nginx:nginx wrk:wrk promtool:prometheus shellcheck:shellcheck; do
  command -v "${bin%%:*}" >/dev/null 2>&1 || [ -x "/usr/sbin/${bin%%:*}" ] || need+=("${bin##*:}")
done
if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo ">> apt-get install ${need[*]}"
    apt-get update -qq
    # --no-install-recommends: prometheus would pull node-exporter, smartmontools and more.
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
  else
    echo "missing: ${need[*]} (install them with your package manager)" >&2
    exit 1
  fi
fi

command -v uv >/dev/null 2>&1 || python3 -m pip install -q uv
uv sync --frozen --all-packages -q
echo ">> python workspace ready (.venv)"

if [ "${TOLLGATE_SKIP_K8S_TOOLS:-0}" != 1 ]; then
  bash hack/k8s-tools.sh all
  # The real-pods tier (tests/cluster): containerd, runc, CNI plugins, docker.io for the image
  # builds, debootstrap for a base image without a registry. Root only; elsewhere it skips.
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    bash hack/cluster.sh deps
  fi
fi
