#!/usr/bin/env bash
# Stops the one-node cluster of scripts/k8s-up.sh and removes everything it
# made: the pods' containers and network namespaces, the components'
# processes, the mounts under $K8S_STATE, the bridge (and with it the pods'
# veth interfaces), kube-proxy's and k8s-up.sh's iptables rules, and
# $K8S_STATE itself. The built binaries in .cache/tools/k8s stay.
#
#   scripts/k8s-down.sh
#
# Idempotent: what is already gone is skipped. Needs root.
set -uo pipefail
# shellcheck source=k8s/env.sh
source "$(dirname "${BASH_SOURCE[0]}")/k8s/env.sh"

# Seconds a component gets between SIGTERM and SIGKILL.
STOP_S=20

say() { echo "k8s-down: $*" >&2; }
[[ $EUID -eq 0 ]] || { say "needs root"; exit 1; }
[[ -d "$K8S_STATE" ]] || exit 0
exec 9>"$K8S_STATE/run/lock" 2>/dev/null && flock -w 600 9

# stop ends component $1: SIGTERM, then SIGKILL after STOP_S.
stop() {
  running "$1" || { rm -f "$(pidfile "$1")"; return 0; }
  local pid deadline=$((SECONDS + STOP_S))
  pid="$(cat "$(pidfile "$1")")"
  kill -TERM "$pid" 2>/dev/null
  while [[ -d /proc/$pid ]] && ((SECONDS < deadline)); do sleep 0.2; done
  [[ -d /proc/$pid ]] && { say "$1 did not stop in ${STOP_S}s; killing it"; kill -KILL "$pid" 2>/dev/null; }
  rm -f "$(pidfile "$1")"
}

# The node agent first, so that nothing restarts the containers.
stop kubelet

# The pods: every task of this containerd is killed and deleted, then its
# containers. (The network namespaces of the sandboxes are mounted under
# the state; they go with the mounts below.)
if running containerd; then
  for id in $(ctr_k8s tasks list -q 2>/dev/null); do ctr_k8s tasks kill -s SIGKILL "$id" >/dev/null 2>&1; done
  for _ in $(seq 50); do
    ids="$(ctr_k8s tasks list -q 2>/dev/null)"
    [[ -z "$ids" ]] && break
    for id in $ids; do ctr_k8s tasks delete "$id" >/dev/null 2>&1; done
    sleep 0.2
  done
  for id in $(ctr_k8s containers list -q 2>/dev/null); do ctr_k8s containers delete "$id" >/dev/null 2>&1; done
fi

for ((i = ${#COMPONENTS[@]} - 1; i >= 0; i--)); do
  [[ "${COMPONENTS[i]}" == kubelet ]] || stop "${COMPONENTS[i]}"
done

# kube-proxy's rules (its KUBE-* chains), then this cluster's own.
if [[ -x "$K8S_BIN/kube-proxy" ]]; then
  "$K8S_BIN/kube-proxy" --cleanup >>"$K8S_STATE/logs/kube-proxy-cleanup.log" 2>&1 ||
    say "kube-proxy --cleanup failed (log: $K8S_STATE/logs/kube-proxy-cleanup.log)"
fi
while iptables -w -D FORWARD -j "$FW_CHAIN" 2>/dev/null; do :; done
iptables -w -F "$FW_CHAIN" 2>/dev/null && iptables -w -X "$FW_CHAIN" 2>/dev/null

# The kubelet's own chains, which kube-proxy --cleanup leaves.
for ipt in iptables ip6tables; do
  for c in INPUT OUTPUT; do
    while "$ipt" -w -D "$c" -j KUBE-FIREWALL 2>/dev/null; do :; done
  done
  for tc in "${KUBELET_CHAINS[@]}"; do
    "$ipt" -w -t "${tc%%:*}" -F "${tc#*:}" 2>/dev/null && "$ipt" -w -t "${tc%%:*}" -X "${tc#*:}" 2>/dev/null
  done
done

ip link show "$BRIDGE" >/dev/null 2>&1 && ip link delete "$BRIDGE"

# Forwarding as it was before k8s-up.sh, unless a Docker engine that needs
# it started since.
if [[ -f "$K8S_STATE/run/ip_forward.before" ]]; then
  before="$(cat "$K8S_STATE/run/ip_forward.before")"
  if [[ "$before" == 0 ]] && pgrep -x dockerd >/dev/null; then
    say "leaving net.ipv4.ip_forward=1: a dockerd runs"
  else
    echo "$before" >/proc/sys/net/ipv4/ip_forward
  fi
fi

# The kubelet's tunables as they were.
if [[ -f "$K8S_STATE/run/sysctl.before" ]]; then
  while read -r k v; do echo "$v" >"/proc/sys/${k//.//}"; done <"$K8S_STATE/run/sysctl.before"
fi

# The kubelet's cgroups (pods and QoS classes), empty once the tasks are gone.
for d in /sys/fs/cgroup/*/kubepods /sys/fs/cgroup/*/kubepods.slice; do
  [[ -d "$d" ]] && find "$d" -depth -type d -exec rmdir {} + 2>/dev/null
done

# Whatever is still mounted under the state (the kubelet's volumes,
# containerd's snapshots and shm), deepest first.
awk -v s="$K8S_STATE/" 'index($2, s) == 1 { print $2 }' /proc/mounts | sort -r | xargs -r -n1 umount -l
left="$(awk -v s="$K8S_STATE/" 'index($2, s) == 1 { print $2 }' /proc/mounts)"
[[ -z "$left" ]] || { say "still mounted: $left"; exit 1; }
if [[ -f "$K8S_STATE/run/host-dirs.created" ]]; then
  while read -r d; do
    # The kubelet leaves its device plugin socket behind.
    [[ "$d" == /var/lib/kubelet ]] && rm -f /var/lib/kubelet/device-plugins/kubelet.sock
    [[ -d "$d" ]] && find "$d" -depth -type d -empty -delete
  done <"$K8S_STATE/run/host-dirs.created"
fi
exec 9>&-
rm -rf "$K8S_STATE"
say "cluster removed"
