#!/usr/bin/env bash
# The Helm chart tested on a real cluster (make test-k8s): the one-node
# cluster of scripts/k8s-up.sh, the images of scripts/test-containers.sh
# imported into its containerd, and the checks of
# deploy/containers/k8s_test.go (go test -tags k8s): helm install with
# every pod Ready, helm test, the README's request through kubectl
# port-forward, calls spread over two pred pods, a pred pod deleted under
# load, a helm upgrade to a pred release with another preprocessing spec
# under load, and helm uninstall leaving nothing. The cluster is removed
# afterwards (scripts/k8s-down.sh) unless PREPRED_K8S_KEEP=1.
#
#   scripts/test-k8s.sh
#
# Needs root (containerd, kubelet, iptables, dockerd for the image builds).
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
images="$root/.cache/k8s-images"

say() { echo "test-k8s: $*" >&2; }
fail() { say "$*"; exit 1; }

declare -A took=()
phase_start=$SECONDS
phase() { took[$1]=$((SECONDS - phase_start)); phase_start=$SECONDS; }

scripts/install-deps.sh k8s
helm="$(scripts/install-helm.sh)"
bin="$(scripts/install-k8s.sh)"
phase tools

scripts/test-containers.sh --save "$images"
phase images

cleanup() {
  local rc=$?
  if [[ "${PREPRED_K8S_KEEP:-}" == 1 ]]; then
    say "PREPRED_K8S_KEEP=1: the cluster stays up (KUBECONFIG=${kubeconfig:-}); scripts/k8s-down.sh removes it"
  else
    scripts/k8s-down.sh || rc=1
  fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
kubeconfig="$(scripts/k8s-up.sh)"
phase cluster

# shellcheck source=k8s/env.sh
source scripts/k8s/env.sh
for f in pred prep pred-release2; do
  ctr_k8s images import "$images/$f.tar" >/dev/null || fail "importing $images/$f.tar failed"
done
ctr_k8s images ls -q | grep prepred/ >&2
phase import

checks_rc=0
PREPRED_TEST_KUBECONFIG="$kubeconfig" PREPRED_TEST_KUBECTL="$bin/kubectl" PREPRED_TEST_HELM="$helm" \
  go test -tags k8s -run '^TestKubernetes$' -count=1 -v -timeout 30m ./deploy/containers/ || checks_rc=$?
phase checks

say "time: tools ${took[tools]}s, images ${took[images]}s, cluster start ${took[cluster]}s, import ${took[import]}s, checks ${took[checks]}s"
((checks_rc == 0)) || fail "checks failed"
say "ok"
