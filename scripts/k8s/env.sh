# Settings of the one-node test cluster, sourced by scripts/k8s-up.sh,
# scripts/k8s-down.sh and scripts/test-k8s.sh. Everything the cluster makes
# lives under $K8S_STATE; every address is in ranges that nothing else on
# the machine routes (k8s-up.sh checks `ip route` before it starts).
# shellcheck shell=bash

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
K8S_STATE="${K8S_STATE:-$root/.cache/k8s}"
K8S_BIN="$root/.cache/tools/k8s/bin"
K8S_KUBECONFIG="$K8S_STATE/admin.kubeconfig"

# Pods get addresses in POD_CIDR on the bridge BRIDGE, whose address (the
# pods' gateway) is also the node's address: the kubelet, CoreDNS and
# kube-proxy's node ports listen on it. Services get theirs in SERVICE_CIDR.
POD_CIDR="${K8S_POD_CIDR:-10.217.0.0/24}"
NODE_IP="${K8S_NODE_IP:-10.217.0.1}"
SERVICE_CIDR="${K8S_SERVICE_CIDR:-10.218.0.0/24}"
# The first address of the service range: the kubernetes Service.
API_SERVICE_IP="${K8S_API_SERVICE_IP:-10.218.0.1}"
BRIDGE="${K8S_BRIDGE:-prepredk8s0}"
NODE_NAME="${K8S_NODE_NAME:-prepred-node}"
CLUSTER_DOMAIN=cluster.local
# iptables chain (filter table) that keeps pod traffic on the bridge.
FW_CHAIN=PREPRED-K8S-FWD

# Ports on loopback, away from the components' defaults so that another
# cluster's or a developer's defaults do not collide with them.
ETCD_PORT="${K8S_ETCD_PORT:-12379}"
ETCD_PEER_PORT="${K8S_ETCD_PEER_PORT:-12380}"
APISERVER_PORT="${K8S_APISERVER_PORT:-16443}"
CONTROLLER_MANAGER_PORT=17257
SCHEDULER_PORT=17259
KUBELET_PORT=10250
KUBELET_HEALTHZ_PORT=17248
PROXY_METRICS_PORT=17249
PROXY_HEALTHZ_PORT=17256
COREDNS_HEALTH_PORT=17280
COREDNS_READY_PORT=17281

# The sandbox image k8s-up.sh builds (scripts/tools/k8s/pause) and imports.
PAUSE_IMAGE=prepred.local/pause:3.10

CONTAINERD_SOCK="$K8S_STATE/run/containerd.sock"
# The components, in start order; k8s-down.sh stops them in reverse.
COMPONENTS=(etcd containerd kube-apiserver kube-controller-manager kube-scheduler kubelet kube-proxy coredns)

# Kernel tunables the kubelet sets at its start (pkg/kubelet/cm setupKernelTunables).
KUBELET_SYSCTLS=(vm.overcommit_memory vm.panic_on_oom kernel.panic kernel.panic_on_oops kernel.keys.root_maxkeys kernel.keys.root_maxbytes)

# Directories outside the state that the components make at fixed paths
# (the kubelet's device plugin socket directory, the CNI library's cache,
# containerd's shim sockets and ctr's fifos); k8s-down.sh removes those that
# k8s-up.sh did not find, when they are empty.
HOST_DIRS=(/var/lib/kubelet /var/lib/cni /run/containerd)
# Chains the kubelet makes in iptables and ip6tables, by table.
KUBELET_CHAINS=(filter:KUBE-FIREWALL filter:KUBE-KUBELET-CANARY nat:KUBE-KUBELET-CANARY mangle:KUBE-KUBELET-CANARY mangle:KUBE-IPTABLES-HINT)

pidfile() { echo "$K8S_STATE/run/$1.pid"; }
# running reports whether component $1 runs (its pid file names a live
# process whose command line is still that component).
running() {
  local pid
  pid="$(cat "$(pidfile "$1")" 2>/dev/null)" || return 1
  [[ -n "$pid" && -d /proc/$pid ]] && tr '\0' ' ' <"/proc/$pid/cmdline" | grep -q -- "$1"
}
ctr_k8s() { ctr --address "$CONTAINERD_SOCK" --namespace k8s.io "$@"; }
