#!/usr/bin/env bash
# Builds the Kubernetes components of the one-node test cluster
# (scripts/k8s-up.sh) into .cache/tools/k8s/bin and prints that directory:
# kube-apiserver, kube-controller-manager, kube-scheduler, kubelet,
# kube-proxy and kubectl from the tool dependencies of scripts/tools/k8s (which pins
# k8s.io/kubernetes and replaces each k8s.io staging module with its release
# of the same version), and CoreDNS from scripts/tools/coredns. Both modules stay out
# of go.work. All Kubernetes binaries come from one `go build` so that they
# share their packages; a cold build takes about 20 minutes on 2 cores.
# Idempotent: binaries built from the pinned versions are reused.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bin="$root/.cache/tools/k8s/bin"
kmod="$root/scripts/tools/k8s"
cmod="$root/scripts/tools/coredns"
kver="$(awk '$1 == "k8s.io/kubernetes" { print $2 }' "$kmod/go.mod")"
cver="$(awk '$1 == "github.com/coredns/coredns" { print $2 }' "$cmod/go.mod")"
k8s_cmds=(kube-apiserver kube-controller-manager kube-scheduler kubelet kube-proxy kubectl)

# built_from prints the version of module $2 that binary $1 was built from.
built_from() {
  go version -m "$1" 2>/dev/null | awk -v m="$2" '$1 == "mod" && $2 == m { print $3 }'
}

need_k8s=0
for c in "${k8s_cmds[@]}"; do
  [[ -x "$bin/$c" && "$(built_from "$bin/$c" k8s.io/kubernetes)" == "$kver" ]] || need_k8s=1
done
mkdir -p "$bin"

if ((need_k8s)); then
  # Without the version stamps the binaries report v0.0.0-master, which
  # fails kubeVersion checks (the chart's among them) and version skew rules.
  minor="${kver#v1.}"; minor="${minor%%.*}"
  ldflags="-s -w"
  for p in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    ldflags+=" -X $p.gitVersion=$kver -X $p.gitMajor=1 -X $p.gitMinor=$minor -X $p.gitTreeState=clean"
  done
  pkgs=()
  for c in "${k8s_cmds[@]}"; do pkgs+=("k8s.io/kubernetes/cmd/$c"); done
  echo "install-k8s: building Kubernetes ${kver} (about 20 minutes on 2 cores)" >&2
  tmp="$bin/.tmp"
  rm -rf "$tmp" && mkdir -p "$tmp"
  (cd "$kmod" && GOWORK=off CGO_ENABLED=0 go build -trimpath -ldflags "$ldflags" -o "$tmp/" "${pkgs[@]}")
  for c in "${k8s_cmds[@]}"; do mv "$tmp/$c" "$bin/$c"; done
  rmdir "$tmp"
fi

if [[ ! -x "$bin/coredns" || "$(built_from "$bin/coredns" github.com/coredns/coredns)" != "$cver" ]]; then
  echo "install-k8s: building CoreDNS ${cver}" >&2
  (cd "$cmod" && GOWORK=off CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" -o "$bin/coredns.tmp" github.com/coredns/coredns)
  mv "$bin/coredns.tmp" "$bin/coredns"
fi

for c in "${k8s_cmds[@]}"; do
  got="$(built_from "$bin/$c" k8s.io/kubernetes)"
  [[ "$got" == "$kver" ]] || { echo "install-k8s: $bin/$c reports k8s.io/kubernetes '$got', want $kver" >&2; exit 1; }
done
echo "$bin"
