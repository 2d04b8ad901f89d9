#!/usr/bin/env bash
# Installs a pinned Helm 3 into .cache/tools/bin (built from source with
# `go install`, so only the Go module proxy is needed) and prints its path.
# The deployment tests (go test ./deploy/...) run `helm lint` and
# `helm template` with it.
# Idempotent: a helm binary already built from the pinned version is reused.
set -euo pipefail

HELM_VERSION=v3.22.0

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bin="$root/.cache/tools/bin"
helm="$bin/helm"

# installed_version prints the helm module version a binary was built from.
installed_version() {
  go version -m "$1" 2>/dev/null | awk '$1 == "mod" && $2 == "helm.sh/helm/v3" { print $3 }'
}

if [[ -x "$helm" && "$(installed_version "$helm")" == "$HELM_VERSION" ]]; then
  echo "$helm"
  exit 0
fi

mkdir -p "$bin"
echo "install-helm: building helm ${HELM_VERSION} (a few minutes on 2 cores)" >&2
GOBIN="$bin" GOWORK=off CGO_ENABLED=0 go install "helm.sh/helm/v3/cmd/helm@${HELM_VERSION}"
got="$(installed_version "$helm")"
[[ "$got" == "$HELM_VERSION" ]] || { echo "install-helm: built $helm reports version '$got', want $HELM_VERSION" >&2; exit 1; }
echo "$helm"
