#!/usr/bin/env bash
# A real single-node Kubernetes on this host, every component a host process, for `make
# test-cluster`: etcd, kube-apiserver, kube-controller-manager, kube-scheduler, kubelet, kube-proxy
# (iptables), CoreDNS, over containerd + runc + the CNI bridge. It serves machines where kind cannot
# run (no privileged containers) and no registry is reachable; ../shared/real-cluster.md has the
# host facts behind each odd line. The binaries come from hack/k8s-tools.sh.
#
#   hack/cluster.sh deps      apt packages (containerd, runc, CNI plugins, docker.io for builds, ...)
#   hack/cluster.sh can-run   exit 0 when this host can start the cluster (root, binaries, runtime)
#   hack/cluster.sh runtime   containerd (CRI) and dockerd (image builds) on local sockets
#   hack/cluster.sh up        control plane + node; waits for the node and the default ServiceAccount
#   hack/cluster.sh down      stops every process of the cluster (by PID file), removes pods, mounts,
#                             iptables chains, cni0 and the node address; a second run starts clean
#   hack/cluster.sh runtime-down  stops containerd and dockerd if `runtime` started them
#   hack/cluster.sh env       prints `export KUBECONFIG=...`
#
# Addresses: loopback, and NODE_IP, a /32 on lo (this kernel has no dummy interface) that pods
# reach and nothing outside the machine can; the pod and Service ranges live in the cluster's own
# network namespaces and iptables rules.
set -euo pipefail

TOOLS="${TOLLGATE_TOOLS:-$HOME/.cache/tollgate/tools}/bin"
STATE="${TOLLGATE_CLUSTER_STATE:-/var/tmp/tollgate-cluster}"
NODE_IP="${NODE_IP:-10.200.0.1}"
NODE="${NODE_NAME:-tollgate-node}"
POD_CIDR="${POD_CIDR:-10.244.0.0/24}"
SVC_CIDR="${SVC_CIDR:-10.96.0.0/16}"
API_PORT="${API_PORT:-16443}"
ETCD_PORT="${ETCD_PORT:-23790}"
CTR_SOCK="${CTR_SOCK:-/run/containerd/containerd.sock}"
PKI="$STATE/pki"
KUBECONFIG_ADMIN="$PKI/admin.kubeconfig"
export PATH="$TOOLS:$PATH"

log() { echo ">> $(date +%T) $*" >&2; }
pidfile() { echo "$STATE/pids/$1.pid"; }
running() { local p; p="$(cat "$(pidfile "$1")" 2>/dev/null)" && kill -0 "$p" 2>/dev/null; }
start() { # start NAME CMD...: a background process with a PID file and a log
  local n="$1"; shift
  running "$n" && return 0
  mkdir -p "$STATE/pids" "$STATE/logs"
  setsid "$@" >"$STATE/logs/$n.log" 2>&1 </dev/null &
  echo $! >"$(pidfile "$n")"
  log "started $n (pid $!)"
}
stop() { # stop NAME: SIGTERM, up to 20 s, then SIGKILL; only the PID we started
  local n="$1" p
  p="$(cat "$(pidfile "$n")" 2>/dev/null)" || return 0
  if kill -0 "$p" 2>/dev/null; then
    kill "$p" 2>/dev/null || true
    for _ in $(seq 1 40); do kill -0 "$p" 2>/dev/null || break; sleep 0.5; done
    kill -0 "$p" 2>/dev/null && kill -9 "$p" 2>/dev/null || true
    log "stopped $n"
  fi
  rm -f "$(pidfile "$n")"
}
wait_for() { # wait_for SECONDS WHAT CMD...
  local t="$1" what="$2"; shift 2
  for _ in $(seq 1 "$t"); do "$@" >/dev/null 2>&1 && return 0; sleep 1; done
  log "timed out waiting for $what"; return 1
}
kc() { kubectl --kubeconfig "$KUBECONFIG_ADMIN" "$@"; }

cmd_deps() {
  local pkgs="docker.io containerd runc containernetworking-plugins debootstrap iptables conntrack socat openssl"
  # shellcheck disable=SC2086
  dpkg -s $pkgs >/dev/null 2>&1 && return 0
  [ "$(id -u)" = 0 ] || { echo "cluster deps missing ($pkgs); run as root" >&2; return 1; }
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $pkgs >/dev/null
}

cmd_can_run() { # says why not on stderr
  local c
  [ "$(id -u)" = 0 ] || { echo "not root" >&2; return 1; }
  for c in etcd kube-apiserver kube-controller-manager kube-scheduler kubelet kube-proxy kubectl coredns crictl helm; do
    [ -x "$TOOLS/$c" ] || { echo "$c not built (hack/k8s-tools.sh all)" >&2; return 1; }
  done
  for c in containerd runc docker debootstrap iptables ip; do
    command -v "$c" >/dev/null || { echo "$c missing (hack/cluster.sh deps)" >&2; return 1; }
  done
  [ -x /usr/lib/cni/bridge ] || { echo "CNI plugins missing (hack/cluster.sh deps)" >&2; return 1; }
}

cmd_runtime() {
  [ "$(id -u)" = 0 ] || { echo "not root: no container runtime" >&2; return 1; }
  command -v containerd >/dev/null || { echo "containerd missing (hack/cluster.sh deps)" >&2; return 1; }
  mkdir -p "$STATE/etc"
  cat >"$STATE/etc/containerd.toml" <<TOML
version = 2
root = "/var/lib/containerd"
state = "/run/containerd"
[grpc]
  address = "$CTR_SOCK"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "local/pause:3.10"
  # The bounding set lacks CAP_SYS_RESOURCE, so nobody may lower oom_score_adj and runc fails on
  # the -998 the CRI gives every sandbox ("can't get final child's PID from pipe: EOF").
  restrict_oom_score_adj = true
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "/etc/cni/net.d"
TOML
  if ! ctr --address "$CTR_SOCK" version >/dev/null 2>&1; then
    start containerd containerd -c "$STATE/etc/containerd.toml"
    wait_for 30 containerd ctr --address "$CTR_SOCK" version
  fi
  if command -v dockerd >/dev/null && ! docker version >/dev/null 2>&1; then
    start dockerd dockerd --containerd="$CTR_SOCK" --host=unix:///var/run/docker.sock
    touch "$STATE/pids/dockerd.ours" # down then removes docker0 and dockerd's iptables rules too
    wait_for 30 dockerd docker version
  fi
}

pause_image() { # the sandbox image: a 20-line Go program, since no registry serves registry.k8s.io/pause
  # grep without -q: -q exits at the first match, and with pipefail the writer's SIGPIPE fails it
  ctr --address "$CTR_SOCK" -n k8s.io images ls -q | grep -x 'docker.io/local/pause:3.10' >/dev/null && return 0
  local d="$STATE/pause"
  mkdir -p "$d"
  cat >"$d/main.go" <<'GO'
// pause holds a pod's namespaces, reaps zombies and exits on SIGINT/SIGTERM.
package main

import (
	"os"
	"os/signal"
	"syscall"
)

func main() {
	sigs := make(chan os.Signal, 8)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM, syscall.SIGCHLD)
	for s := range sigs {
		if s != syscall.SIGCHLD {
			os.Exit(0)
		}
		for {
			var ws syscall.WaitStatus
			if pid, err := syscall.Wait4(-1, &ws, syscall.WNOHANG, nil); pid <= 0 || err != nil {
				break
			}
		}
	}
}
GO
  printf 'module local/pause\n\ngo 1.26.0\n' >"$d/go.mod"
  (cd "$d" && CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" -o pause .)
  printf 'FROM scratch\nCOPY pause /pause\nUSER 65535:65535\nENTRYPOINT ["/pause"]\n' >"$d/Dockerfile"
  DOCKER_BUILDKIT=0 docker build -q -t local/pause:3.10 "$d" >/dev/null
  docker save local/pause:3.10 | ctr --address "$CTR_SOCK" -n k8s.io images import - >/dev/null
}

cert() { # cert NAME SUBJECT EKU [SAN]
  local n="$1" subj="$2" eku="$3" san="${4:-}"
  openssl req -new -nodes -newkey ec -pkeyopt ec_paramgen_curve:P-256 -keyout "$n.key" -out "$n.csr" -subj "$subj" 2>/dev/null
  { echo "basicConstraints=CA:FALSE"; echo "keyUsage=critical,digitalSignature,keyEncipherment"
    echo "extendedKeyUsage=$eku"; [ -z "$san" ] || echo "subjectAltName=$san"; } >"$n.ext"
  openssl x509 -req -in "$n.csr" -CA ca.crt -CAkey ca.key -CAcreateserial -days 30 -extfile "$n.ext" -out "$n.crt" 2>/dev/null
}
kubeconfig() { # kubeconfig NAME: a kubeconfig for NAME.crt/NAME.key
  cat >"$1.kubeconfig" <<YAML
apiVersion: v1
kind: Config
clusters: [{name: tollgate, cluster: {server: "https://$NODE_IP:$API_PORT", certificate-authority-data: $(base64 -w0 ca.crt)}}]
users: [{name: $1, user: {client-certificate-data: $(base64 -w0 "$1.crt"), client-key-data: $(base64 -w0 "$1.key")}}]
contexts: [{name: tollgate, context: {cluster: tollgate, user: $1}}]
current-context: tollgate
YAML
}
pki() {
  [ -f "$KUBECONFIG_ADMIN" ] && return 0
  mkdir -p "$PKI" && cd "$PKI"
  openssl req -x509 -new -nodes -newkey ec -pkeyopt ec_paramgen_curve:P-256 -keyout ca.key -out ca.crt -days 30 -subj /CN=tollgate-cluster-ca 2>/dev/null
  cert apiserver /CN=kube-apiserver serverAuth \
    "IP:$NODE_IP,IP:127.0.0.1,IP:${SVC_CIDR%.0/*}.1,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local"
  cert admin "/O=system:masters/CN=admin" clientAuth
  cert kubelet "/O=system:nodes/CN=system:node:$NODE" clientAuth
  cert kubelet-serving "/CN=$NODE" serverAuth "IP:$NODE_IP,DNS:$NODE"
  openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out sa.key 2>/dev/null
  openssl pkey -in sa.key -pubout -out sa.pub
  kubeconfig admin; kubeconfig kubelet
  cd - >/dev/null
}

network() {
  ip -4 -o addr show dev lo | grep -F " $NODE_IP/32 " >/dev/null || ip addr add "$NODE_IP/32" dev lo
  sysctl -qw net.ipv4.ip_forward=1
  modprobe br_netfilter 2>/dev/null || true
  sysctl -qw net.bridge.bridge-nf-call-iptables=1 2>/dev/null || true
  mkdir -p /etc/cni/net.d
  # firewall: dockerd sets the FORWARD policy to DROP; portmap: hostPort
  cat >/etc/cni/net.d/10-tollgate.conflist <<JSON
{"cniVersion": "0.4.0", "name": "tollgate", "plugins": [
  {"type": "bridge", "bridge": "cni0", "isGateway": true, "ipMasq": true, "hairpinMode": true,
   "ipam": {"type": "host-local", "ranges": [[{"subnet": "$POD_CIDR"}]], "routes": [{"dst": "0.0.0.0/0"}]}},
  {"type": "firewall", "backend": "iptables"},
  {"type": "portmap", "capabilities": {"portMappings": true}}]}
JSON
}

control_plane() {
  mkdir -p "$STATE/etcd"
  start etcd etcd --name tollgate --data-dir "$STATE/etcd" \
    --listen-client-urls "http://127.0.0.1:$ETCD_PORT" --advertise-client-urls "http://127.0.0.1:$ETCD_PORT" \
    --listen-peer-urls "http://127.0.0.1:$((ETCD_PORT + 10))" --initial-advertise-peer-urls "http://127.0.0.1:$((ETCD_PORT + 10))" \
    --initial-cluster "tollgate=http://127.0.0.1:$((ETCD_PORT + 10))" --unsafe-no-fsync --log-level warn
  wait_for 30 etcd curl -sf "http://127.0.0.1:$ETCD_PORT/health"
  # The audit log records every request of the operator's ServiceAccount: the least-privilege
  # test compares it with the RBAC the chart grants.
  cat >"$STATE/etc/audit-policy.yaml" <<YAML
apiVersion: audit.k8s.io/v1
kind: Policy
rules:
  - level: Metadata
    userGroups: ["system:serviceaccounts"]
  - level: None
YAML
  start kube-apiserver kube-apiserver --etcd-servers "http://127.0.0.1:$ETCD_PORT" \
    --bind-address "$NODE_IP" --advertise-address "$NODE_IP" --secure-port "$API_PORT" \
    --service-cluster-ip-range "$SVC_CIDR" --client-ca-file "$PKI/ca.crt" \
    --tls-cert-file "$PKI/apiserver.crt" --tls-private-key-file "$PKI/apiserver.key" \
    --kubelet-client-certificate "$PKI/admin.crt" --kubelet-client-key "$PKI/admin.key" \
    --kubelet-preferred-address-types InternalIP,Hostname \
    --service-account-issuer https://kubernetes.default.svc.cluster.local \
    --service-account-key-file "$PKI/sa.pub" --service-account-signing-key-file "$PKI/sa.key" \
    --authorization-mode Node,RBAC --enable-admission-plugins NodeRestriction --profiling=false \
    --audit-policy-file "$STATE/etc/audit-policy.yaml" --audit-log-path "$STATE/logs/audit.log" \
    --audit-log-maxsize 100
  wait_for 90 kube-apiserver curl -sf --cacert "$PKI/ca.crt" "https://$NODE_IP:$API_PORT/readyz"
  start kube-controller-manager kube-controller-manager --kubeconfig "$KUBECONFIG_ADMIN" \
    --authentication-kubeconfig "$KUBECONFIG_ADMIN" --authorization-kubeconfig "$KUBECONFIG_ADMIN" \
    --bind-address 127.0.0.1 --secure-port 20257 --leader-elect=false \
    --root-ca-file "$PKI/ca.crt" --service-account-private-key-file "$PKI/sa.key" \
    --cluster-signing-cert-file "$PKI/ca.crt" --cluster-signing-key-file "$PKI/ca.key" \
    --use-service-account-credentials=true --service-cluster-ip-range "$SVC_CIDR"
  start kube-scheduler kube-scheduler --kubeconfig "$KUBECONFIG_ADMIN" \
    --authentication-kubeconfig "$KUBECONFIG_ADMIN" --authorization-kubeconfig "$KUBECONFIG_ADMIN" \
    --bind-address 127.0.0.1 --secure-port 20259 --leader-elect=false
}

node() {
  local dns
  dns="$(awk '/^nameserver/{print $2; exit}' /etc/resolv.conf)"
  cat >"$STATE/etc/Corefile" <<COREFILE
.:53 {
    bind $NODE_IP
    errors
    kubernetes cluster.local in-addr.arpa ip6.arpa {
        kubeconfig $KUBECONFIG_ADMIN tollgate
        pods insecure
        fallthrough in-addr.arpa ip6.arpa
    }
    forward . ${dns:-127.0.0.1}
    cache 30
}
COREFILE
  start coredns coredns -conf "$STATE/etc/Corefile"
  cat >"$STATE/etc/kubelet.yaml" <<YAML
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
address: $NODE_IP
port: 20250
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
healthzPort: 20248
tlsCertFile: $PKI/kubelet-serving.crt
tlsPrivateKeyFile: $PKI/kubelet-serving.key
authentication: {anonymous: {enabled: false}, webhook: {enabled: true}, x509: {clientCAFile: $PKI/ca.crt}}
authorization: {mode: Webhook}
cgroupDriver: cgroupfs
failCgroupV1: false
failSwapOn: false
containerRuntimeEndpoint: unix://$CTR_SOCK
clusterDomain: cluster.local
clusterDNS: [$NODE_IP]
resolvConf: /etc/resolv.conf
serializeImagePulls: false
maxPods: 60
evictionHard: {memory.available: 100Mi, nodefs.available: 2%, imagefs.available: 2%, nodefs.inodesFree: 2%}
imageGCHighThresholdPercent: 95
imageGCLowThresholdPercent: 90
YAML
  start kubelet kubelet --config "$STATE/etc/kubelet.yaml" --kubeconfig "$PKI/kubelet.kubeconfig" \
    --hostname-override "$NODE" --node-ip "$NODE_IP" --root-dir /var/lib/kubelet -v 1
  start kube-proxy kube-proxy --kubeconfig "$KUBECONFIG_ADMIN" --hostname-override "$NODE" \
    --proxy-mode iptables --cluster-cidr "$POD_CIDR" --nodeport-addresses "$NODE_IP/32" \
    --healthz-bind-address 127.0.0.1:20256 --metrics-bind-address 127.0.0.1:20249 --conntrack-max-per-core 0
}

cmd_up() {
  cmd_can_run
  cmd_runtime
  pause_image
  pki
  network
  control_plane
  node
  wait_for 120 "node Ready" kc wait --for=condition=Ready "node/$NODE" --timeout=2s
  wait_for 60 "default ServiceAccount" kc -n default get serviceaccount default # else pods are Forbidden
  log "up: export KUBECONFIG=$KUBECONFIG_ADMIN"
}

cmd_runtime_down() { # dockerd and containerd, only if this script started them
  stop dockerd
  stop containerd
  if [ -f "$STATE/pids/dockerd.ours" ]; then
    ip link del docker0 2>/dev/null || true
    for s in filter nat; do
      { iptables-save -t "$s" | grep -E '^-A .*(DOCKER|docker0)' || true; } | sed 's/^-A/-D/' | while read -r r; do
        # shellcheck disable=SC2086
        iptables -t "$s" $r 2>/dev/null || true
      done
      for r in DOCKER DOCKER-USER DOCKER-ISOLATION-STAGE-1 DOCKER-ISOLATION-STAGE-2; do iptables -t "$s" -X "$r" 2>/dev/null || true; done
    done
    iptables -P FORWARD ACCEPT # dockerd had set it to DROP
    rm -f "$STATE/pids/dockerd.ours"
  fi
  { grep -oE ' /run/containerd/[^ ]*' /proc/mounts || true; } | sort -r \
    | while read -r s; do umount "$s" 2>/dev/null || umount -l "$s" 2>/dev/null || true; done
}

cmd_down() {
  local s
  stop kubelet
  [ -S "$CTR_SOCK" ] && crictl --runtime-endpoint "unix://$CTR_SOCK" rmp -fa >/dev/null 2>&1 || true
  if [ -S "$CTR_SOCK" ]; then # containers crictl could not remove: kill their tasks
    for s in $(ctr --address "$CTR_SOCK" -n k8s.io tasks ls -q 2>/dev/null); do
      ctr --address "$CTR_SOCK" -n k8s.io tasks kill -s KILL "$s" >/dev/null 2>&1 || true
    done
  fi
  for s in kube-proxy coredns kube-scheduler kube-controller-manager kube-apiserver etcd; do stop "$s"; done
  kube-proxy --cleanup >/dev/null 2>&1 || true
  # mounts of the kubelet and of the pods' containers (secrets, projected tokens, shm, netns),
  # deepest first; Docker's containers (testcontainers) on the same containerd are left alone
  { grep -oE ' (/var/lib/kubelet|/run/containerd/[^ ]*/k8s\.io|/run/netns)[^ ]*' /proc/mounts || true; } | sort -r \
    | while read -r s; do umount "$s" 2>/dev/null || umount -l "$s" 2>/dev/null || true; done
  # chains the kubelet and the CNI firewall plugin leave (kube-proxy --cleanup removed its own)
  iptables -D INPUT -j KUBE-FIREWALL 2>/dev/null || true
  iptables -D OUTPUT -j KUBE-FIREWALL 2>/dev/null || true
  while iptables -D FORWARD -m comment --comment "CNI firewall plugin rules" -j CNI-FORWARD 2>/dev/null; do :; done
  for s in KUBE-FIREWALL CNI-FORWARD CNI-ADMIN KUBE-KUBELET-CANARY; do iptables -F "$s" 2>/dev/null || true; iptables -X "$s" 2>/dev/null || true; done
  # the bridge plugin's masquerade chains of pods whose CNI DEL never ran; by rule number, last
  # first (their comments hold quotes that a rule re-read from iptables-save would split wrong)
  iptables -t nat -L POSTROUTING -n --line-numbers | awk '$2 ~ /^CNI-/ {print $1}' | sort -rn \
    | while read -r s; do iptables -t nat -D POSTROUTING "$s" 2>/dev/null || true; done
  for s in $(iptables-save -t nat | grep -oE '^:CNI-[A-Za-z0-9-]+' | tr -d :); do
    iptables -t nat -F "$s" 2>/dev/null || true; iptables -t nat -X "$s" 2>/dev/null || true
  done
  for s in KUBE-KUBELET-CANARY KUBE-IPTABLES-HINT; do
    iptables -t nat -X "$s" 2>/dev/null || true; iptables -t mangle -X "$s" 2>/dev/null || true
  done
  rm -f /etc/cni/net.d/10-tollgate.conflist
  rm -rf /var/lib/cni/networks/tollgate
  ip link del cni0 2>/dev/null || true
  ip addr del "$NODE_IP/32" dev lo 2>/dev/null || true
  # etcd and the PKI go too: the next `up` is a fresh cluster
  rm -rf "$STATE/etcd" "$STATE/volumes" "$PKI" /var/lib/kubelet/pods 2>/dev/null || true
  log "down"
}

case "${1:-}" in
  deps) cmd_deps ;;
  can-run) cmd_can_run ;;
  runtime) cmd_runtime ;;
  up) cmd_up ;;
  down) cmd_down ;;
  runtime-down) cmd_runtime_down ;;
  env) echo "export KUBECONFIG=$KUBECONFIG_ADMIN" ;;
  *) sed -n '2,20p' "$0"; exit 2 ;;
esac
